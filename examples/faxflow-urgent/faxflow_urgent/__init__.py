"""faxflow-urgent: an example third-party package shipping three faxflow plugins.

- ``urgent`` (`faxflow_urgent.urgent`): labels a fax "urgent" when its text contains one of the
  configured words, so rules can route it; adds ``faxflow urgent-words``.
- ``sender_block`` (`faxflow_urgent.block`): stops faxes from blocked numbers before anything
  is delivered (a hold vote): they are quarantined with the reason.
- ``pager`` (`faxflow_urgent.pager`): a destination type, ``type = "pager"``: one line per fax
  in an outbox file a paging gateway reads.

Each is an entry point of its own (pyproject.toml), found and loaded like the built-ins.
Written only against faxflow's documented API (docs/plugins.md, docs/api.md).
"""
