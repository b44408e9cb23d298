using RaftServer.Hosting;

// Foundation placeholder: validates the command line and config.conf. The node
// itself (consensus loop, storage, gRPC services) arrives with the server issue.
if (args.Length < 1 || !int.TryParse(args[0], out var id))
{
    Console.Error.WriteLine("usage: RaftServer ID [--config PATH]");
    return 2;
}

var configPath = "config.conf";
for (var i = 1; i < args.Length - 1; i++)
    if (args[i] == "--config") configPath = args[i + 1];

try
{
    var config = ClusterConfig.Load(configPath);
    if (config.Find(id) is not { } self)
    {
        Console.Error.WriteLine($"node {id} is not in {configPath} (ids: {string.Join(", ", config.Nodes.Select(n => n.Id))})");
        return 2;
    }
    Console.Error.WriteLine($"node {self} is configured; the server is not implemented yet");
    return 1;
}
catch (ConfigException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}
