"""The benchmark harness of issue 6: `make bench` runs every scenario against the real
service and prints a table plus bench/results/<timestamp>.json. Not part of the tests."""
