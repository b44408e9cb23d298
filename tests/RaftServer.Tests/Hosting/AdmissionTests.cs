using RaftServer.Hosting;

namespace RaftServer.Tests.Hosting;

/// <summary>The counts behind admission control, without a loop.</summary>
public sealed class AdmissionTests
{
    [Fact]
    public void Writes_are_admitted_up_to_the_cap_and_refused_beyond_it()
    {
        var admission = new Admission(maxWrites: 3, maxReads: 2);
        Assert.True(admission.TryAdmitWrites(2));
        Assert.True(admission.TryAdmitWrites(1));
        Assert.False(admission.TryAdmitWrites(1));
        Assert.Equal(3, admission.PendingWrites); // the refusal took nothing
        Assert.Equal("too many pending writes (3); retry later", admission.WritesRefused().Reason);
        Assert.Equal(OutcomeCode.ResourceExhausted, admission.WritesRefused().Code);
    }

    [Fact]
    public void Reads_have_their_own_cap()
    {
        var admission = new Admission(maxWrites: 1, maxReads: 2);
        Assert.True(admission.TryAdmitWrites(1));
        Assert.True(admission.TryAdmitRead());
        Assert.True(admission.TryAdmitRead());
        Assert.False(admission.TryAdmitRead());
        Assert.Equal("too many pending reads (2); retry later", admission.ReadsRefused().Reason);
    }

    [Fact]
    public void Room_comes_back_once_the_loop_has_answered_what_it_took()
    {
        var admission = new Admission(maxWrites: 2, maxReads: 2);
        Assert.True(admission.TryAdmitWrites(2));
        // The loop took both and still holds them: still full.
        admission.TurnEnded(takenWrites: 2, takenReads: 0, heldWrites: 2, heldReads: 0);
        Assert.False(admission.TryAdmitWrites(1));
        // One was answered in a later turn.
        admission.TurnEnded(takenWrites: 0, takenReads: 0, heldWrites: 1, heldReads: 0);
        Assert.True(admission.TryAdmitWrites(1));
        Assert.False(admission.TryAdmitWrites(1));
        Assert.Equal(2, admission.PendingWrites);
    }

    [Fact]
    public void A_batch_larger_than_the_cap_is_let_in_only_when_nothing_else_is_pending()
    {
        var admission = new Admission(maxWrites: 4, maxReads: 1);
        Assert.True(admission.TryAdmitWrites(10));
        Assert.False(admission.TryAdmitWrites(10));
        admission.TurnEnded(takenWrites: 10, takenReads: 0, heldWrites: 0, heldReads: 0);
        Assert.True(admission.TryAdmitWrites(10));
    }

    [Fact]
    public void Concurrent_admissions_never_exceed_the_cap()
    {
        var admission = new Admission(maxWrites: 100, maxReads: 1);
        var admitted = 0;
        Parallel.For(0, 10_000, _ =>
        {
            if (admission.TryAdmitWrites(1)) Interlocked.Increment(ref admitted);
        });
        Assert.Equal(100, admitted);
        Assert.Equal(100, admission.PendingWrites);
    }
}
