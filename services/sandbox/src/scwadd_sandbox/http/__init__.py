"""The sandbox's routes, one router per resource, assembled into its two faces.

- :mod:`.api` (``create_api_app``): the API face, behind mutual TLS: :mod:`.token` (the token
  endpoint), :mod:`.espi` (the ESPI resources), :mod:`.batch` (Batch and Bulk requests),
  :mod:`.authorization` (the third party's Authorization resources), all through the checks of
  :mod:`.access`.
- :mod:`.web` (``create_web_app``): the browser face: :mod:`.consent` (PG&E's myAuthorization
  login and consent pages, their HTML in :mod:`.pages`) and :mod:`.admin` (the admin API).
"""
