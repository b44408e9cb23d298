using RaftServer.Hosting;

return await ServerHost.RunAsync(args);
