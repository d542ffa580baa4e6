"""Generated from proto/conclave/v1 by clients/python/generate.sh. Do not edit.

Messages are in ``<file>_pb2`` (e.g. ``runs_pb2.CreateRunRequest``), service stubs in
``<file>_pb2_grpc`` (e.g. ``runs_pb2_grpc.RunServiceStub``).
"""
