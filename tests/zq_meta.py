"""Shared by the zqcow2-nbd tests: NBD metadata context listing."""

import nbd


def listed(uri, *queries):
    """The context names the server at uri lists for these queries
    (NBD_OPT_LIST_META_CONTEXT; none given: the empty query), in the
    order it sent them."""
    h = nbd.NBD()
    h.set_opt_mode(True)
    h.connect_uri(uri)
    h.clear_meta_contexts()
    for query in queries:
        h.add_meta_context(query)
    names = []
    h.opt_list_meta_context(lambda name: names.append(name) or 0)
    h.opt_abort()
    return names
