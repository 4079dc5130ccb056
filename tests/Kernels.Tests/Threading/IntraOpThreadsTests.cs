namespace Quantize.Kernels.Tests.Threading;

/// <summary>The kernels' fork-join: every item once, errors back on the caller, loops inside loops and concurrent loops complete.</summary>
public class IntraOpThreadsTests
{
    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 2)]
    [InlineData(7, 2)]
    [InlineData(1000, 3)]
    [InlineData(5, 1)]
    public void Every_item_runs_exactly_once(int count, int threads)
    {
        for (int round = 0; round < 50; round++)
        {
            var runs = new int[count];
            IntraOpThreads.For(count, threads, i => Interlocked.Increment(ref runs[i]));
            Assert.All(runs, r => Assert.Equal(1, r));
        }
    }

    [Fact]
    public void An_exception_in_an_item_reaches_the_caller_after_the_other_items_ran()
    {
        var runs = new int[64];
        var error = Assert.Throws<InvalidOperationException>(() => IntraOpThreads.For(64, 2, i =>
        {
            Interlocked.Increment(ref runs[i]);
            if (i == 17) throw new InvalidOperationException("item 17");
        }));
        Assert.Equal("item 17", error.Message);
        Assert.All(runs, r => Assert.Equal(1, r));
        // Also when the workers are busy and the inner loops go to the thread pool (whose Parallel.For wraps exceptions).
        int innerRuns = 0;
        var nested = Assert.Throws<InvalidOperationException>(() => IntraOpThreads.For(4, 2, _ => IntraOpThreads.For(8, 2, j =>
        {
            Interlocked.Increment(ref innerRuns);
            if (j == 5) throw new InvalidOperationException("nested item 5");
        })));
        Assert.Equal("nested item 5", nested.Message);
        // With one core every loop runs on the caller and stops at its first exception; with more, every item runs.
        if (Environment.ProcessorCount >= 2) Assert.Equal(4 * 8, innerRuns);
        // The workers are free again.
        int total = 0;
        IntraOpThreads.For(10, 2, i => Interlocked.Add(ref total, i));
        Assert.Equal(45, total);
    }

    [Fact]
    public void Loops_inside_loops_and_loops_from_many_threads_complete()
    {
        long total = 0;
        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, outer =>
        {
            for (int round = 0; round < 20; round++)
            {
                IntraOpThreads.For(16, 2, i => IntraOpThreads.For(4, 2, j => Interlocked.Add(ref total, 1)));
            }
        });
        Assert.Equal(8L * 20 * 16 * 4, total);
    }
}
