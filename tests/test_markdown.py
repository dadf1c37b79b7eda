"""The one Markdown table writer against hand-written tables."""

from cmnet_keras import markdown


def test_table_aligns_escapes_and_leaves_missing_values_empty():
    table = markdown.table(["name", "score", "note"],
                           [["a", 0.123456789, None], ["b", float("nan"), "x|y\nz"], ["c", 3, ""]], right=["score"])
    assert table == ("| name | score | note |\n"
                     "| --- | ---: | --- |\n"
                     "| a | 0.123457 |  |\n"
                     "| b |  | x\\|y z |\n"
                     "| c | 3 |  |\n")


def test_table_without_rows_is_its_header():
    assert markdown.table(["a", "b"], []) == "| a | b |\n| --- | --- |\n"
