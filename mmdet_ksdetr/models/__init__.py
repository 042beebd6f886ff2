"""mmdet models added by mmdet_ksdetr (registered in mmdet.registry)."""
