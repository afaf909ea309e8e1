// Package merger turns the CSV chunks of each (archive, attempt, table) batch published by the
// extractor into per-table Parquet objects, exactly once in effect.
//
// # Ownership
//
// Each rows partition N has one durable pull consumer merger-p<N> (filter <prefix>.rows.<N>.>,
// explicit acks, priority group "sluice" with PriorityPolicyPinned). The server pins a partition
// to the first merger that pulls on it and keeps it pinned while that merger keeps pulling within
// PinnedTTL; another merger takes over once the owner stops (dies) for longer. A merger that is
// busy (committing) or paused (memory) keeps its pins alive with pull requests of max_bytes 1,
// which cannot take a message. A merger that learns it lost a pin (423 from the server) hands
// back (Nak) every batch it held on that partition, so the new owner receives whole batches.
//
// Balance: every merger writes a heartbeat key into the KV bucket <PREFIX>_MERGERS (TTL three
// beats, a beat every PinnedTTL/6) holding the partitions it serves, lists the live keys, and
// watches the bucket so that a merger joining or leaving is counted at once. Partition n is
// preferred by the (n mod k)-th, in sorted key order, of the k live mergers that serve n. A merger
// pulls on a preferred partition while it owns fewer pins than it has preferred partitions, and on
// any partition that has messages waiting and no pin at all. Pins on partitions preferred by
// another merger are released: the partition first finishes the batches it holds (up to
// PinnedTTL/2), then hands back the rest and unpins (Consumer Unpin, if the pin is still its own).
// Correctness never depends on balance: batches are keyed deterministically, so a batch committed
// twice writes the same rows at the same keys (the same bytes, unless one commit used rows parsed
// on arrival and the other parsed them at commit: row-group boundaries may then differ).
//
// # Memory
//
// One budget covers the buffered chunk payloads of all open batches on all partitions plus the
// Arrow builders of commits in progress. Payloads are kept and counted as received: an S2 chunk
// (Chunk.codec) stays compressed, decoded into a per-partition scratch buffer only to infer types
// on arrival and again, chunk by chunk, at commit. Over the budget, the largest in-memory batch's
// chunks are released: dropped from memory, keeping only the ack handle and stream sequence, since
// the rows stream holds every message until its limits remove it (a commit that needs one fetches
// it back by sequence); while still over, fetching pauses (pins and InProgress are kept alive)
// instead of failing. Chunk data that does not decode poisons its batch, which is
// dead-lettered with the reason when its marker arrives.
//
// # Acks and commit
//
// A batch's messages are held un-acked (InProgress every AckWait/3) until the batch commits:
// on its marker the counts are checked (every chunk index, rows, data bytes, members); a
// mismatch is Nak'ed with RetryDelay and dead-lettered on its MaxDeliver-th delivery (the batch's
// messages are then terminated). A complete batch goes through the committer (committer.go), the
// one commit path the partitions and Replay share: it evolves the table schema in the registry
// (compare-and-set), writes one Parquet object per (process_date, batch_id) at a deterministic
// key, commits the quarantine objects then the Parquet objects and publishes BatchCommitted
// (de-duplicated by message id); only then does the merger ack the chunks and, synchronously,
// the marker.
// An abort drops the batch and acks its messages. On shutdown everything held is handed back.
//
// # MaxAckPending
//
// A held message carries no payload in memory once its chunk is released, so MaxAckPending bounds
// only handles. It must exceed the largest number of chunks that can be outstanding on one
// partition before their markers arrive, about the sum over concurrently extracting archives of
// their chunks on that partition; with 1 MiB chunks the default 200 000 covers 200 GiB of
// in-flight CSV per partition. If ack-pending reaches the limit while no batch can complete, the
// merger moves the batch that started last to the tail of the stream (it republishes its chunks
// with fresh message ids, then acks the originals), so that older batches can finish. A Nak would
// not break the deadlock: a Nak'ed message keeps its ack-pending slot until it is redelivered,
// and redeliveries come first.
//
// # Retry delay
//
// (MaxDeliver-1)·RetryDelay must exceed AckWait: when an owner dies holding part of a batch, its
// successor may see the marker before those chunks, which come back only when their AckWait
// runs out. Every hand-back (shutdown, rebalance, lost pin) costs the handed-back messages one
// delivery. MaxDeliver is therefore the merger's own rule, applied to the marker (a batch whose
// marker reaches it without its chunks is dead-lettered, visibly), not the consumer's: the
// partition consumers have no server-side delivery limit, since a message handed back on its last
// delivery would never be delivered again and its batch would be stranded without a trace.
package merger
