using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Quantize.Kernels;

/// <summary>
/// The kernels' parallel loops, in place of <c>Parallel.For</c>: a few dedicated worker threads that spin for up to 10 ms
/// after each loop before they block, as ONNX Runtime's intra-op threads spin by default. A model runs tens to hundreds of
/// parallel loops per inference; the thread pool's workers block between them, and on the virtual machines we measure
/// on, waking a blocked worker (and its idle virtual CPU) costs tens of microseconds each time. Two-thread inference was
/// slower and scattered from process to process: MiniLM b1 took 17 ms in one BenchmarkDotNet run and 24 ms in the next.
/// <para>
/// Items are claimed one at a time from a shared counter, so which thread runs an item never changes its result. One
/// loop uses the workers at a time; a loop started while they are taken (a concurrent <c>Run</c> of a session, or a loop
/// inside a loop) goes to the thread pool as before. The calling thread always takes part.
/// </para>
/// </summary>
internal static class IntraOpThreads
{
    /// <summary>
    /// How long a worker spins for the next loop before it blocks. With 0.5 ms, BenchmarkDotNet's pause between two
    /// timed GEMMs was enough for the worker to block, and two-thread int8 GEMMs ran at one-thread speed in some
    /// iterations (medians 0.99x and 1.30x one thread); with 10 ms they scaled 1.78-1.95x with a tight spread.
    /// </summary>
    private static readonly long SpinTicks = Stopwatch.Frequency / 100; // 10 ms

    private static readonly Lock Growing = new();
    private static Worker[] _workers = [];
    private static Job? _current;
    private static int _taken;

    /// <summary>Runs <paramref name="body"/>(0 .. count - 1) on up to <paramref name="maxThreads"/> threads, this one included.</summary>
    public static void For(int count, int maxThreads, Action<int> body)
    {
        int helpers = Math.Min(Math.Min(maxThreads, count) - 1, Environment.ProcessorCount - 1);
        if (helpers <= 0)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        if (Interlocked.CompareExchange(ref _taken, 1, 0) != 0)
        {
            // The same job on pool threads: every item runs, and the first exception is rethrown as itself (not wrapped).
            var pooled = new Job(body, count, helpers);
            Parallel.For(0, helpers + 1, new ParallelOptions { MaxDegreeOfParallelism = helpers + 1 }, _ => pooled.Work());
            pooled.ThrowIfFailed();
            return;
        }
        try
        {
            var workers = Workers(helpers);
            var job = new Job(body, count, helpers);
            Volatile.Write(ref _current, job);
            // Pairs with the fence in Worker.NextJob: either the worker sees the job, or we see it asleep and wake it.
            Interlocked.MemoryBarrier();
            for (int w = 0; w < helpers; w++) workers[w].WakeIfAsleep();
            job.Work();
            job.WaitUntilDone();
            Volatile.Write(ref _current, null);
            job.ThrowIfFailed();
        }
        finally
        {
            Volatile.Write(ref _taken, 0);
        }
    }

    private static Worker[] Workers(int count)
    {
        var workers = Volatile.Read(ref _workers);
        if (workers.Length >= count) return workers;
        lock (Growing)
        {
            workers = _workers;
            if (workers.Length >= count) return workers;
            var grown = new Worker[count];
            workers.CopyTo(grown, 0);
            for (int i = workers.Length; i < count; i++) grown[i] = new Worker(i);
            Volatile.Write(ref _workers, grown);
            return grown;
        }
    }

    /// <summary>One loop: its items, claimed in order from a shared counter.</summary>
    private sealed class Job(Action<int> body, int count, int helpers)
    {
        private int _next = -1;
        private int _done;
        private Exception? _error;

        /// <summary>Workers with an index below this take part.</summary>
        public int Helpers { get; } = helpers;

        public void Work()
        {
            int item;
            while ((item = Interlocked.Increment(ref _next)) < count)
            {
                try
                {
                    body(item);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref _error, e, null);
                }
                Interlocked.Increment(ref _done);
            }
        }

        public void WaitUntilDone()
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _done) < count) spin.SpinOnce(sleep1Threshold: -1);
        }

        public void ThrowIfFailed()
        {
            if (_error is not null) ExceptionDispatchInfo.Throw(_error);
        }
    }

    private sealed class Worker
    {
        private readonly int _index;
        private readonly ManualResetEventSlim _wake = new(false);
        private volatile bool _asleep;
        private Job? _last;

        public Worker(int index)
        {
            _index = index;
            new Thread(Loop) { IsBackground = true, Name = $"Quantize.Kernels worker {index + 1}" }.Start();
        }

        public void WakeIfAsleep()
        {
            if (_asleep) _wake.Set();
        }

        private void Loop()
        {
            while (true)
            {
                var job = NextJob();
                if (_index < job.Helpers) job.Work();
                _last = job;
            }
        }

        private Job NextJob()
        {
            long start = Stopwatch.GetTimestamp();
            var spin = new SpinWait();
            while (true)
            {
                if (Volatile.Read(ref _current) is { } job && job != _last) return job;
                if (Stopwatch.GetTimestamp() - start < SpinTicks)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                    continue;
                }
                _wake.Reset();
                _asleep = true;
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref _current) is { } late && late != _last)
                {
                    _asleep = false;
                    return late;
                }
                _wake.Wait();
                _asleep = false;
                start = Stopwatch.GetTimestamp();
                spin.Reset();
            }
        }
    }
}
