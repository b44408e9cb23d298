using RaftServer.Hosting;

SharedArrayPoolSize.Configure();
return await ServerHost.RunAsync(args);
