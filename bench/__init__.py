"""The benchmark harness: `make bench` runs every scenario against the real
service and prints a table plus bench/results/<timestamp>.json. Not part of the tests."""
