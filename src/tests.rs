// pg_tests: filled in below
