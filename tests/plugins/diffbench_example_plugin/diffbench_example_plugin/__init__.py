"""An example diffbench plugin: a metric, its protocol, a model adapter, a dataset reader."""
