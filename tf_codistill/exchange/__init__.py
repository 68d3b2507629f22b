"""Between groups: verified publish/poll of weight snapshots, checkpoint peers as
teachers, the precision of exchanged weights, and who reads whom (topology)."""
