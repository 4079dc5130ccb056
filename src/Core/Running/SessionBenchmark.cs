using System.Diagnostics;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Running;

/// <summary>Latency, throughput and memory of one model on our runtime.</summary>
/// <param name="MedianMilliseconds">Median latency of one run.</param>
/// <param name="P90Milliseconds">90th-percentile latency.</param>
/// <param name="RunsPerSecond">1000 / median.</param>
/// <param name="Iterations">Timed runs.</param>
/// <param name="WorkingSetAfterLoadBytes">The process's working set after loading (and a full collection).</param>
/// <param name="PeakWorkingSetWhileRunningBytes">The largest working set while the timed runs ran.</param>
public sealed record BenchmarkResult(double MedianMilliseconds, double P90Milliseconds, double RunsPerSecond, int Iterations,
    long WorkingSetAfterLoadBytes, long PeakWorkingSetWhileRunningBytes);

/// <summary>Times a <see cref="ModelSession"/> on fixed inputs and measures the process's memory while it runs.</summary>
public static class SessionBenchmark
{
    /// <summary>Runs <paramref name="warmup"/> untimed and <paramref name="iterations"/> timed runs.</summary>
    public static BenchmarkResult Run(ModelSession session, IReadOnlyDictionary<string, Tensor> inputs, int warmup, int iterations)
    {
        for (int i = 0; i < warmup; i++) session.Run(inputs);

        // What loading left behind (the model file, the parsed message) is garbage now: give it back first.
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        long afterLoad = Environment.WorkingSet;

        using var peak = new PeakWorkingSet();
        var times = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            long start = Stopwatch.GetTimestamp();
            session.Run(inputs);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        long peakBytes = peak.Read();
        Array.Sort(times);
        double median = times[times.Length / 2];
        double p90 = times[Math.Min(times.Length - 1, (int)Math.Ceiling(times.Length * 0.9) - 1)];
        return new BenchmarkResult(median, p90, 1000 / median, iterations, afterLoad, Math.Max(peakBytes, afterLoad));
    }

    /// <summary>
    /// The peak working set from now on: on Linux the kernel's high-water mark, reset first (clear_refs 5);
    /// elsewhere a sampler every millisecond.
    /// </summary>
    internal sealed class PeakWorkingSet : IDisposable
    {
        private readonly bool _kernel;
        private readonly Thread? _sampler;
        private volatile bool _stop;
        private long _peak;

        public PeakWorkingSet()
        {
            try
            {
                File.WriteAllText("/proc/self/clear_refs", "5");
                _kernel = File.Exists("/proc/self/status");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _kernel = false;
            }
            if (_kernel) return;
            _sampler = new Thread(() =>
            {
                while (!_stop)
                {
                    long now = Environment.WorkingSet;
                    if (now > Interlocked.Read(ref _peak)) Interlocked.Exchange(ref _peak, now);
                    Thread.Sleep(1);
                }
            }) { IsBackground = true };
            _sampler.Start();
        }

        public long Read()
        {
            if (!_kernel) return Interlocked.Read(ref _peak);
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
            return Environment.WorkingSet;
        }

        public void Dispose()
        {
            _stop = true;
            _sampler?.Join();
        }
    }
}
