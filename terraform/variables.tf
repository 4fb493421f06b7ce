variable "aws_region" {
  type        = string
  description = "AWS region for the instance, its Elastic IP and the SSM parameters (e.g. us-west-2)."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region code such as us-west-2."
  }
}

variable "name" {
  type        = string
  description = "Name prefix of every AWS resource."
  default     = "scwadd"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "domain_name" {
  type        = string
  description = "Public host name (e.g. scwadd.example.com). The redirect URI registered with PG&E is https://<domain_name>/OAuthCallback; it must resolve to the Elastic IP."

  validation {
    condition     = can(regex("^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name))
    error_message = "domain_name must be a lower-case fully qualified host name such as scwadd.example.com."
  }
}

variable "route53_zone_id" {
  type        = string
  description = "Route 53 hosted zone to create the A record for domain_name in; null when DNS is managed elsewhere (then point domain_name at the elastic_ip output)."
  default     = null

  validation {
    condition     = var.route53_zone_id == null || can(regex("^Z[A-Z0-9]{5,31}$", var.route53_zone_id))
    error_message = "route53_zone_id must be a hosted zone id such as Z0123456789ABCDEFGHIJ, or null."
  }
}

variable "acme_email" {
  type        = string
  description = "E-mail address Let's Encrypt sends certificate expiry notices to."

  validation {
    condition     = can(regex("^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$", var.acme_email))
    error_message = "acme_email must be an e-mail address."
  }
}

variable "acme_server" {
  type        = string
  description = "ACME directory: Let's Encrypt production, or its staging URL while testing."
  default     = "https://acme-v02.api.letsencrypt.org/directory"

  validation {
    condition     = can(regex("^https://[^\\s\"]+$", var.acme_server))
    error_message = "acme_server must be an https URL."
  }
}

variable "instance_type" {
  type        = string
  description = "EC2 instance type; k3s plus the services fit in 4 GiB (t3.medium)."
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like t3.medium."
  }
}

variable "root_volume_size_gb" {
  type        = number
  description = "Size of the encrypted root volume in GiB; it also holds the NATS and PostgreSQL volumes (k3s local-path storage)."
  default     = 40

  validation {
    condition     = var.root_volume_size_gb >= 20 && var.root_volume_size_gb <= 1000 && floor(var.root_volume_size_gb) == var.root_volume_size_gb
    error_message = "root_volume_size_gb must be a whole number between 20 and 1000."
  }
}

variable "subnet_id" {
  type        = string
  description = "Public subnet for the instance; null uses the default VPC's first default subnet."
  default     = null

  validation {
    condition     = var.subnet_id == null || can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "subnet_id must be a subnet id such as subnet-0123456789abcdef0, or null."
  }
}

variable "ssh_ingress_cidr" {
  type        = string
  description = "CIDR allowed to reach port 22; null (the default) opens no SSH port at all. Prefer SSM Session Manager."
  default     = null

  validation {
    condition     = var.ssh_ingress_cidr == null || (can(cidrhost(var.ssh_ingress_cidr, 0)) && try(var.ssh_ingress_cidr != "0.0.0.0/0", false))
    error_message = "ssh_ingress_cidr must be a CIDR such as 203.0.113.7/32 (never 0.0.0.0/0), or null."
  }
}

variable "ssh_key_name" {
  type        = string
  description = "EC2 key pair for SSH; null when SSH is not used."
  default     = null
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse API termination of the instance: its root volume holds the only copy of the NATS and PostgreSQL data between backups."
  default     = true
}

variable "k3s_version" {
  type        = string
  description = "k3s release installed on the instance (pinned; the chart is checked against its Kubernetes version)."
  default     = "v1.33.4+k3s1"

  validation {
    condition     = can(regex("^v1\\.[0-9]+\\.[0-9]+\\+k3s[0-9]+$", var.k3s_version))
    error_message = "k3s_version must be a k3s release tag such as v1.33.4+k3s1."
  }
}

variable "cert_manager_version" {
  type        = string
  description = "cert-manager chart version that obtains the Let's Encrypt certificate."
  default     = "v1.16.2"

  validation {
    condition     = can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+$", var.cert_manager_version))
    error_message = "cert_manager_version must look like v1.16.2."
  }
}

variable "chart_repository" {
  type        = string
  description = "OCI reference of the published scwadd chart, e.g. oci://ghcr.io/acme/charts/scwadd (see docs/deploy.md, 'Publish')."

  validation {
    condition     = can(regex("^oci://[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$", var.chart_repository))
    error_message = "chart_repository must be an oci:// reference such as oci://ghcr.io/acme/charts/scwadd."
  }
}

variable "chart_version" {
  type        = string
  description = "Version of the scwadd chart to deploy."
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$", var.chart_version))
    error_message = "chart_version must be a semantic version such as 0.1.0."
  }
}

variable "image_registry" {
  type        = string
  description = "Registry and path the service images were pushed to: images are <image_registry>/scwadd-<service>:<image_tag>."

  validation {
    condition     = can(regex("^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$", var.image_registry))
    error_message = "image_registry must look like ghcr.io/acme."
  }
}

variable "image_tag" {
  type        = string
  description = "Tag of the service images."
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid image tag."
  }
}

variable "ssm_parameter_prefix" {
  type        = string
  description = "SSM Parameter Store path holding the secrets (SecureString): <prefix>/pge-client-id, pge-client-secret, pge-client-cert, pge-client-key, token-sealing-keys, operator-htpasswd. The instance may read these and nothing else."
  default     = "/scwadd"

  validation {
    condition     = can(regex("^(/[A-Za-z0-9_.-]+)+$", var.ssm_parameter_prefix))
    error_message = "ssm_parameter_prefix must be an absolute parameter path without a trailing slash, such as /scwadd/prod."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
