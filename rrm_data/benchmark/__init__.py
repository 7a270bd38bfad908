"""The benchmark grid: suites (``suite``), running them (``runner``), their statistics
(``report``)."""
