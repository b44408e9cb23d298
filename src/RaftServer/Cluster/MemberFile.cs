using System.Globalization;
using RaftServer.Consensus;
using RaftServer.Storage;

namespace RaftServer.Cluster;

/// <summary>
/// The members a joining node learned from the cluster, kept in its data directory
/// (<c>join.conf</c>: lines of <c>ID HOST PORT voter|learner</c>) until its own log holds the
/// configuration: a restart before then still knows where its peers and itself listen, and that
/// it must not bootstrap a cluster of its own.
/// </summary>
public static class MemberFile
{
    public const string FileName = "join.conf";

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>Writes the file durably (temporary file, fsync, rename, directory fsync).</summary>
    public static void Write(string path, MemberSet members)
    {
        var lines = new List<string> { "# The members this node learned when it joined; its log's configuration replaces them." };
        foreach (var m in members.Members)
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"{m.Id} {m.Address.Host} {m.Address.Port} {(m.Role == MemberRole.Learner ? "learner" : "voter")}"));
        var temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        using (var writer = new StreamWriter(file))
        {
            foreach (var line in lines) writer.WriteLine(line);
            writer.Flush();
            file.Flush(flushToDisk: true);
        }
        DurableFiles.Install(temp, path);
    }

    /// <summary>The members in the file, or null when there is none.</summary>
    /// <exception cref="ConfigException">the file is malformed (the message names the line).</exception>
    public static MemberSet? TryRead(string path)
    {
        if (!File.Exists(path)) return null;
        var members = new List<Member>();
        var number = 0;
        foreach (var raw in File.ReadAllLines(path))
        {
            number++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var f = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length != 4 || !int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                || !int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || f[3] is not ("voter" or "learner"))
                throw new ConfigException($"{path}:{number}: expected 'ID HOST PORT voter|learner', found '{line}'");
            members.Add(new Member(new NodeAddress(id, f[1], port), f[3] == "learner" ? MemberRole.Learner : MemberRole.Voter));
        }
        return new MemberSet(members);
    }
}
