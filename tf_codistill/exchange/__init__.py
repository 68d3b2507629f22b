"""Between groups: verified publish/poll of weight snapshots, checkpoint peers as
teachers, and the precision of exchanged weights."""
