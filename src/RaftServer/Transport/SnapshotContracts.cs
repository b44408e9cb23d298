using RaftServer.Consensus;

namespace RaftServer.Transport;

// What the snapshot transfer needs from storage, and nothing more: Transport/ moves bytes, the
// snapshot store (Storage/) owns files, and the host adapts one to the other.

/// <summary>Leader side: where the bytes of a snapshot to send come from.</summary>
public interface ISnapshotSource
{
    /// <summary>
    /// The raw bytes of the snapshot file <paramref name="meta"/> names (header to trailer, as
    /// stored on disk), as a readable stream that knows its <see cref="Stream.Length"/> (a
    /// FileStream does): the receiver is told the total length before the first byte. Called on
    /// a background task; the caller disposes the stream. Throws
    /// <see cref="FileNotFoundException"/> when that snapshot is gone (compacted past); the
    /// transfer is then reported as failed and the core asks again with its newer snapshot.
    /// </summary>
    Stream OpenSnapshot(SnapshotMetadata meta);
}

/// <summary>Follower side: where the bytes of a snapshot being received go.</summary>
public interface ISnapshotSink
{
    /// <summary>
    /// Starts storing a snapshot the leader is sending. May be called concurrently (an old and a
    /// new leader, or a restarted transfer whose aborted predecessor is still being torn down):
    /// every upload must be independent of the others (its own temp file). <paramref name="clusterId"/>
    /// is the sender's cluster id (the header's): a node that knows none yet takes it if, and only
    /// if, the core installs the snapshot.
    /// </summary>
    ISnapshotUpload BeginUpload(SnapshotMetadata meta, ulong clusterId = 0);
}

/// <summary>One snapshot being received. Not thread-safe: one gRPC call writes it in order.</summary>
public interface ISnapshotUpload : IDisposable
{
    /// <summary>Appends the next bytes of the file (chunks arrive in order, without gaps).</summary>
    void Write(ReadOnlySpan<byte> chunk);

    /// <summary>
    /// All bytes are written: verify them (throws <see cref="InvalidDataException"/> when the file
    /// is damaged), make them durable and return the handle the core carries in
    /// <see cref="Message.SnapshotData"/> and hands back in <see cref="Ready.SnapshotData"/>.
    /// </summary>
    object Complete();

    // Dispose is always called, last. Without a successful Complete it discards what was written;
    // after one it only releases resources (the completed data stays, owned by the handle).
}
