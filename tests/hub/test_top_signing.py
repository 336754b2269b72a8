"""The TOP-family signature equals the worked examples of specs/platform-apis.md §1.4 and §6.1 byte for byte."""

import pytest

from connectors.top_signing import sign, signing_string, verify

SECRET = "test_secret_123"
BASE = {
    "method": "taobao.trades.sold.increment.get", "app_key": "12345678", "session": "6100a1b2c3",
    "timestamp": "2024-03-01 12:00:00", "format": "json", "v": "2.0", "fields": "tid,status,payment,orders",
    "start_modified": "2024-03-01 00:00:00", "end_modified": "2024-03-01 01:00:00", "page_no": "1",
    "page_size": "50", "use_has_next": "true",
}


@pytest.mark.parametrize("method, expected", [
    ("md5", "FB7B85F4912ACEAB0343981047513289"),
    ("hmac", "3ACAF21F91D33B10F8E73638EBE663F0"),
    ("hmac-sha256", "F098580B63F06197E800046ADFBFBDF789F676D38B6ECBC0DFD8DBC1283D67C5"),
])
def test_top_signature_matches_the_worked_example(method, expected):
    assert sign({**BASE, "sign_method": method}, SECRET, method) == expected


def test_signing_string_is_sorted_name_value_pairs_without_separators():
    concat = signing_string({**BASE, "sign_method": "md5"})
    assert concat == ("app_key12345678end_modified2024-03-01 01:00:00fieldstid,status,payment,ordersformatjson"
                      "methodtaobao.trades.sold.increment.getpage_no1page_size50session6100a1b2c3sign_methodmd5"
                      "start_modified2024-03-01 00:00:00timestamp2024-03-01 12:00:00use_has_nexttruev2.0")


def test_qimen_signature_appends_the_body_as_in_the_worked_example():
    query = {"method": "deliveryorder.create", "app_key": "23456789", "customerId": "C001", "format": "xml",
             "sign_method": "md5", "timestamp": "2024-03-01 12:00:00", "v": "2.0"}
    body = "<request><deliveryOrder><deliveryOrderCode>DO001</deliveryOrderCode></deliveryOrder></request>"
    assert sign(query, "qm_secret", "md5", body) == "31078346400D6CEA4B3C52556CE01C16"


def test_empty_parameters_and_the_sign_itself_do_not_take_part():
    params = {**BASE, "sign_method": "md5", "buyer_nick": "", "sign": "WHATEVER"}
    assert sign(params, SECRET) == "FB7B85F4912ACEAB0343981047513289"


def test_verify_accepts_the_right_signature_and_refuses_a_tampered_request():
    params = {**BASE, "sign_method": "hmac"}
    params["sign"] = sign(params, SECRET, "hmac")
    assert verify(params, SECRET)
    assert not verify({**params, "page_no": "2"}, SECRET)
    assert not verify(params, "another_secret")
