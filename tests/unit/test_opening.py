"""Opening data (Ch. 5) as pure functions: which open deliveries a publication makes and what they carry (R-29.1,
R-32.1, R-32.2, R-32.3), and the open catalog as JSON and as DCAT JSON-LD a harvester reads (R-30.1)."""

import json
from datetime import UTC, datetime

import pytest
import rdflib

from ops.seeds import approved_entry
from streams.rules import opening

NOW = datetime(2026, 12, 3, 17, 30, tzinfo=UTC)  # 01:30 on 4 December in Shanghai
ITEMS = [{"name": "公民身份号码", "type": "identifier", "subject_id": True},
         {"name": "姓名", "type": "string", "personal": True, "open_treatment": "mask:name"},
         {"name": "出生日期", "type": "date", "personal": True, "open_treatment": "generalize:year"},
         {"name": "保障类别", "type": "string", "open_treatment": "none"}]
NAMES = {"WY-MZ": "威远县民政局", "NJ-SJJ": "内江市大数据中心"}


def entry(code: str, opened: str, **extra) -> dict:
    return approved_entry("wy-subsidy.yaml", resource_code=code, open_attribute=opened, data_items=ITEMS, **extra)


def publication(code: str) -> dict:
    return {"event_id": "e1", "resource_code": code, "occurred_at": NOW, "subject_id": "51102419690817975X",
            "items": {"姓名": "唐秀英", "出生日期": "1969-08-17", "保障类别": "农村低保"}}


def grant(party: str, items: list[str], code: str = "WY-MZ-KF-001", revoked: bool = False) -> dict:
    return {"grant_id": f"open:{party}", "party": party, "resource_code": code, "items": items, "revoked": revoked}


@pytest.mark.rule("R-32.3")
@pytest.mark.rule("R-32.2")
@pytest.mark.rule("R-29.1")
def test_unconditionally_open_data_goes_to_the_open_feed_desensitized_with_its_source_and_retrieval_date():
    e = entry("WY-MZ-KF-001", "无条件开放")
    ((party, rec),) = opening.open_records(publication("WY-MZ-KF-001"), e, "威远县民政局", [], NOW)
    assert party is None
    assert rec["items"] == {"姓名": "唐**", "出生日期": "1969", "保障类别": "农村低保"}
    assert "51102419690817975X" not in json.dumps(rec, default=str, ensure_ascii=False)
    assert (rec["source_department"], rec["source_department_name"]) == ("WY-MZ", "威远县民政局")
    assert rec["retrieved_on"] == "2026-12-04"  # the day in Shanghai


@pytest.mark.rule("R-32.1")
def test_conditionally_open_data_goes_only_to_approved_parties_in_their_approved_items():
    e = entry("WY-MZ-KF-001", "有条件开放", open_conditions="公益研究")
    grants = [grant("A", ["保障类别"]), grant("B", ["姓名", "保障类别"]), grant("C", ["姓名"], revoked=True),
              grant("D", ["姓名"], code="OTHER")]
    out = opening.open_records(publication("WY-MZ-KF-001"), e, "威远县民政局", grants, NOW)
    assert [(p, r["items"], r["grant_id"]) for p, r in out] == [
        ("A", {"保障类别": "农村低保"}, "open:A"), ("B", {"姓名": "唐**", "保障类别": "农村低保"}, "open:B")]
    assert opening.open_records(publication("WY-MZ-KF-001"), e, "威远县民政局", [], NOW) == []


@pytest.mark.rule("R-30.1")
def test_resources_that_are_not_open_make_no_open_delivery_and_are_not_in_the_open_catalog():
    closed = entry("WY-MZ-DB-001", "不予开放")
    assert opening.open_records(publication("WY-MZ-DB-001"), closed, "威远县民政局", [grant("A", ["姓名"])], NOW) == []
    catalog = opening.open_catalog_json([closed, entry("WY-MZ-KF-001", "无条件开放")], NAMES)
    assert [r["resource_code"] for r in catalog] == ["WY-MZ-KF-001"]
    assert catalog[0]["provider_name"] == "威远县民政局" and catalog[0]["open_label"] == "无条件开放"
    assert [(i["name"], i["open_treatment"]) for i in catalog[0]["data_items"]] == [
        ("姓名", "mask:name"), ("出生日期", "generalize:year"), ("保障类别", "none")]  # never the subject id


@pytest.mark.rule("R-30.1")
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_the_dcat_catalog_is_json_ld_a_harvester_reads_as_datasets_with_publisher_and_access_rights():
    entries = [entry("WY-MZ-KF-001", "无条件开放"), entry("WY-MZ-KF-002", "有条件开放", open_conditions="公益研究",
                                                         open_basis="第三十二条"),
               entry("WY-MZ-DB-001", "不予开放")]
    doc = opening.dcat_catalog(entries, NAMES, base="https://data.example.gov.cn/", title="政务数据开放目录",
                               publisher="NJ-SJJ", access_url=lambda e: f"kafka://bus/{e['resource_code']}")
    g = rdflib.Graph().parse(data=json.dumps(doc, ensure_ascii=False), format="json-ld")
    rows = g.query("""
        PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/>
        PREFIX foaf: <http://xmlns.com/foaf/0.1/>
        SELECT ?id ?title ?org ?rights ?url WHERE {
            ?cat a dcat:Catalog ; dcat:dataset ?d .
            ?d a dcat:Dataset ; dct:identifier ?id ; dct:title ?title ; dct:accessRights ?rights ;
               dct:publisher [ foaf:name ?org ] ; dcat:distribution [ dcat:accessURL ?url ] .
        } ORDER BY ?id""")
    got = [(str(r.id), str(r.title), str(r.org), str(r.rights).rsplit("/", 1)[-1], str(r.url)) for r in rows]
    name = entries[0]["entry"]["name"]
    assert got == [("WY-MZ-KF-001", name, "威远县民政局", "PUBLIC", "kafka://bus/WY-MZ-KF-001"),
                   ("WY-MZ-KF-002", name, "威远县民政局", "RESTRICTED", "kafka://bus/WY-MZ-KF-002")]
    (publisher,) = g.query("""PREFIX dcat: <http://www.w3.org/ns/dcat#> PREFIX dct: <http://purl.org/dc/terms/>
        PREFIX foaf: <http://xmlns.com/foaf/0.1/>
        SELECT ?n WHERE { ?c a dcat:Catalog ; dct:publisher [ foaf:name ?n ] }""")
    assert str(publisher.n) == "内江市大数据中心"
    restricted = doc["dcat:dataset"][1]["dct:rights"]["dct:description"]["@value"]
    assert "有条件开放：公益研究" in restricted and "第三十二条" in restricted
