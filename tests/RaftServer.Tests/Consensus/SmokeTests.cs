using RaftServer.Consensus;

namespace RaftServer.Tests.Consensus;

public class SmokeTests
{
    [Fact]
    public void Three_nodes_elect_replicate_commit_and_read()
    {
        var cluster = new TestCluster(3);
        cluster.Campaign(0);
        Assert.Equal(0, cluster.Leader());
        Assert.Equal(1, cluster[0].Term);

        var result = cluster[0].Propose(TestCluster.Bytes("x=1"));
        Assert.Equal(ProposeOutcome.Accepted, result.Outcome);
        Assert.Equal(2, result.Index);
        cluster.Settle();
        foreach (int id in new[] { 0, 1, 2 })
        {
            Assert.Equal(2, cluster[id].CommitIndex);
            Assert.Equal(["", "x=1"], cluster.Applied[id].Select(TestCluster.Text));
        }

        Assert.True(cluster[0].ReadIndex(7));
        Assert.True(cluster[2].ReadIndex(8));
        cluster.Settle();
        Assert.Equal([new ReadState(7, 2)], cluster.Reads[0]);
        Assert.Equal([new ReadState(8, 2)], cluster.Reads[2]);
    }

    [Fact]
    public void Single_node_commits_at_once()
    {
        var cluster = new TestCluster(1);
        cluster.Campaign(0);
        Assert.Equal(Role.Leader, cluster[0].Role);
        var result = cluster[0].Propose(TestCluster.Bytes("a"));
        cluster.Settle();
        Assert.Equal(result.Index, cluster[0].CommitIndex);
        Assert.True(cluster[0].ReadIndex(1));
        cluster.Settle();
        Assert.Equal([new ReadState(1, 2)], cluster.Reads[0]);
    }
}
