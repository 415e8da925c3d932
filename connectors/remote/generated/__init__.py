"""Generated from proto/opensqt/market_maker/v1 by scripts/gen_proto.py. Do not edit.

Regenerate with `make proto`; tests/remote/test_proto.py fails when these files are stale.
"""
