"""The expectation types the ``sql`` engine evaluates itself, by GX's names."""

from __future__ import annotations

NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
NOT_IN_SET = "expect_column_values_to_not_be_in_set"
REGEX = "expect_column_values_to_match_regex"
MIN = "expect_column_min_to_be_between"
MAX = "expect_column_max_to_be_between"
MEAN = "expect_column_mean_to_be_between"
SUM = "expect_column_sum_to_be_between"
ROW_COUNT = "expect_table_row_count_to_be_between"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
EXISTS = "expect_column_to_exist"
OF_TYPE = "expect_column_values_to_be_of_type"
