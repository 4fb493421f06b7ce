import pytest
from scwadd_fetcher.documents import (
    MalformedDocument,
    batch_list_resources,
    check_feed,
    read_feed,
    usage_point_ids,
)

USAGE_POINTS = b"""<?xml version="1.0"?>
<ns1:feed xmlns:ns1="http://www.w3.org/2005/Atom" xmlns:ns0="http://naesb.org/espi">
  <ns1:id>urn:x</ns1:id>
  <ns1:entry>
    <ns1:link rel="self" href="https://api/x/resource/Subscription/S1/UsagePoint/QUJD"/>
    <ns1:content><ns0:UsagePoint><ns0:ServiceCategory><ns0:kind>0</ns0:kind>
    </ns0:ServiceCategory></ns0:UsagePoint></ns1:content>
  </ns1:entry>
  <entry xmlns="http://www.w3.org/2005/Atom">
    <link rel="up" href="https://api/x/resource/Subscription/S1/UsagePoint"/>
    <link rel="self" href="https://api/x/resource/Subscription/S1/UsagePoint/REVG"/>
    <content><UsagePoint xmlns="http://naesb.org/espi"/></content>
  </entry>
</ns1:feed>"""


def test_usage_points_are_read_by_namespace_whatever_the_prefix():
    assert usage_point_ids(USAGE_POINTS) == ["QUJD", "REVG"]


def test_batch_list_resources():
    body = (
        b'<ns0:BatchList xmlns:ns0="http://naesb.org/espi">'
        b"<ns0:resources>https://a/Batch/Bulk/1?correlationID=x</ns0:resources>"
        b"<ns0:resources> https://a/Batch/Bulk/2 </ns0:resources></ns0:BatchList>"
    )
    assert batch_list_resources(body) == [
        "https://a/Batch/Bulk/1?correlationID=x",
        "https://a/Batch/Bulk/2",
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<feed",
        b"<html><body>Service Unavailable</body></html>",
        b'<BatchList xmlns="http://naesb.org/espi"/>',
    ],
)
def test_malformed_documents_are_refused(body):
    with pytest.raises(MalformedDocument):
        batch_list_resources(body)
    with pytest.raises(MalformedDocument):
        check_feed(body)


def test_a_doctype_is_refused_before_any_entity_is_expanded():
    body = (
        b'<?xml version="1.0"?><!DOCTYPE f [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<feed xmlns="http://www.w3.org/2005/Atom"><id>&e;</id></feed>'
    )
    with pytest.raises(MalformedDocument):
        check_feed(body)


def test_check_feed_counts_readings():
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content>'
        b'<IntervalBlock xmlns="http://naesb.org/espi">'
        b"<IntervalReading><timePeriod><duration>900</duration><start>0</start></timePeriod>"
        b"<value>1</value></IntervalReading>"
        b"<IntervalReading><timePeriod><duration>900</duration><start>900</start></timePeriod>"
        b"<value>2</value></IntervalReading>"
        b"</IntervalBlock></content></entry></feed>"
    )
    assert check_feed(body) == 2


def test_a_feed_is_read_once_for_its_readings_and_usage_points():
    base = "https://api.example/espi/1_1/resource/Subscription/7/UsagePoint"
    reading = (
        "<IntervalReading><timePeriod><duration>900</duration><start>{start}</start>"
        "</timePeriod><value>1</value></IntervalReading>"
    )
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom">'
        f'<entry><link rel="self" href="{base}/42"/><content>'
        '<UsagePoint xmlns="http://naesb.org/espi"/></content></entry>'
        f'<entry><link rel="self" href="{base}/42/MeterReading/1/IntervalBlock/1"/><content>'
        '<IntervalBlock xmlns="http://naesb.org/espi">'
        + "".join(reading.format(start=900 * n) for n in range(3))
        + "</IntervalBlock></content></entry></feed>"
    ).encode()
    feed = read_feed(body)
    assert (feed.body, feed.readings, feed.usage_points) == (body, 3, ("42",))
    assert check_feed(body) == 3
    with pytest.raises(MalformedDocument):
        read_feed(b'<BatchList xmlns="http://naesb.org/espi"/>')
