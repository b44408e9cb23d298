using System.Management.Automation;

namespace RaftPS.Cmdlets;

/// <summary>
/// Lets -Connection take anything that names a node by Address and Port: a RaftConnection, a node
/// from Start-RaftCluster, a RaftLeader, a RaftMember, or an object with those properties (these
/// take the TLS settings and token of the runspace's current connection).
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class RaftConnectionTransformationAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        // A node named by an object reaches it as the current connection does (TLS, token): they are of one cluster.
        var security = value is RaftConnection or null ? null : CurrentConnection.Get()?.Security;
        switch (value)
        {
            case null:
            case RaftConnection:
                return value;
            case RaftNodeProcess node:
                return new RaftConnection(node.Address, node.Port, security);
            case RaftLeader leader:
                return new RaftConnection(leader.Address, leader.Port, security);
            case RaftMember member:
                return new RaftConnection(member.Address, member.Port, security);
        }
        var psObject = PSObject.AsPSObject(inputData);
        if (psObject.Properties["Address"]?.Value is { } address && psObject.Properties["Port"]?.Value is { } port
            && LanguagePrimitives.TryConvertTo<int>(port, out var portNumber))
            return new RaftConnection(address.ToString()!, portNumber, security);
        return inputData;
    }
}
