"""The benchmark harness of issue 6: our server against a no-op gRPC floor, driven by h2load."""
