"""Reports: a tidy table of measured and published rows, written as CSV, Markdown and HTML."""
