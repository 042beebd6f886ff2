"""Analysis behind ``tools/analysis_tools/{query_affinity,ks_attention,teacher_layers}.py``:
the numbers each paper's figures show, computed from a config + checkpoint on its val images
(:mod:`.common` holds the command line, loading and output they share)."""
