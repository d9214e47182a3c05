from ops.publish import read_rows
from tests.helpers import resident_id

ID = resident_id()


def test_csv_rows_and_a_broken_row():
    data = f"subject_id,姓名,地址\n{ID},张三,市中区\n{ID},李四\n{ID},王五,东兴区\n".encode()
    rows = list(read_rows(data, "csv"))
    assert [r.line for r in rows] == [2, 3, 4]
    assert rows[0].record == {"subject_id": ID, "items": {"姓名": "张三", "地址": "市中区"}}
    assert rows[1].record is None
    assert rows[1].problem == "line 3 has 2 fields, the header has 3"
    assert rows[1].raw == f"{ID},李四\n".encode()
    assert rows[2].record["items"]["姓名"] == "王五"


def test_csv_without_subject_column_is_refused_whole():
    rows = list(read_rows("姓名,地址\n张三,市中区\n".encode(), "csv"))
    assert len(rows) == 1 and "no subject_id column" in rows[0].problem


def test_the_subject_may_be_named_as_the_catalog_names_the_resources_subject_item():
    rows = list(read_rows(f"公民身份号码,姓名\n{ID},张三\n".encode(), "csv", subject_item="公民身份号码"))
    assert [r.record for r in rows] == [{"subject_id": ID, "items": {"姓名": "张三"}}]
    line = f'{{"公民身份号码": "{ID}", "姓名": "张三"}}\n'
    rows = list(read_rows(line.encode(), "json", subject_item="公民身份号码"))
    assert [r.record for r in rows] == [{"subject_id": ID, "items": {"姓名": "张三"}}]
    (row,) = read_rows("身份证,姓名\nx,张三\n".encode(), "csv", subject_item="公民身份号码")
    assert row.problem == ("the CSV header has no subject_id column (nor 公民身份号码, the resource's subject item): "
                           "its columns are 身份证, 姓名")


def test_csv_empty_cell_is_null_and_missing_subject_is_a_problem():
    rows = list(read_rows(f"subject_id,a,b\n{ID},,x\n,1,2\n".encode(), "csv"))
    assert rows[0].record["items"] == {"a": None, "b": "x"}
    assert "no subject_id" in rows[1].problem


def test_json_array_with_items_object_and_flat_fields():
    data = f'[{{"subject_id": "{ID}", "items": {{"a": 1}}, "event_id": "e-1"}}, {{"subject_id": "{ID}", "b": true}}, 5]'
    rows = list(read_rows(data.encode(), "json"))
    assert rows[0].record == {"subject_id": ID, "items": {"a": 1}, "event_id": "e-1"}
    assert rows[1].record["items"] == {"b": True}
    assert "expected an object" in rows[2].problem


def test_json_lines_with_a_bad_line():
    data = f'{{"subject_id": "{ID}", "a": 1}}\nnot json\n\n{{"subject_id": "{ID}", "a": 2}}\n'
    rows = list(read_rows(data.encode(), "json"))
    assert [r.line for r in rows] == [1, 2, 4]
    assert rows[1].problem.startswith("line 2 is not valid JSON")
    assert rows[2].record["items"] == {"a": 2}


def test_broken_json_document():
    rows = list(read_rows(b'[{"subject_id": 1,', "json"))
    assert len(rows) == 1 and rows[0].problem.startswith("not valid JSON")
