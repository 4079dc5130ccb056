using System.Diagnostics;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Running;

/// <summary>A model timed against a baseline in the same run.</summary>
/// <param name="Model">The model's latency (memory fields: the process holding both sessions).</param>
/// <param name="Baseline">The baseline's latency (same memory figures as <paramref name="Model"/>).</param>
/// <param name="Speedup">Baseline median over model median: above 1 means the model is faster.</param>
public sealed record PairedBenchmarkResult(BenchmarkResult Model, BenchmarkResult Baseline, double Speedup);

/// <summary>
/// Times two sessions on the same inputs with their runs interleaved (model, baseline, model, ...), so that
/// whatever else the machine does (other processes, frequency changes) falls on both alike.
/// </summary>
public static class PairedBenchmark
{
    /// <summary>Runs both sessions <paramref name="warmup"/> times untimed, then <paramref name="iterations"/> timed rounds.</summary>
    /// <param name="model">The model measured (e.g. the quantized one).</param>
    /// <param name="modelInputs">Its inputs.</param>
    /// <param name="baseline">The baseline (e.g. the float original).</param>
    /// <param name="baselineInputs">The baseline's inputs.</param>
    /// <param name="warmup">Untimed runs of each first.</param>
    /// <param name="iterations">Timed runs of each.</param>
    public static PairedBenchmarkResult Run(ModelSession model, IReadOnlyDictionary<string, Tensor> modelInputs,
        ModelSession baseline, IReadOnlyDictionary<string, Tensor> baselineInputs, int warmup, int iterations)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        for (int i = 0; i < warmup; i++)
        {
            model.Run(modelInputs);
            baseline.Run(baselineInputs);
        }
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        long afterLoad = Environment.WorkingSet;

        using var peak = new SessionBenchmark.PeakWorkingSet();
        var modelTimes = new double[iterations];
        var baselineTimes = new double[iterations];
        for (int i = 0; i < iterations; i++)
        {
            // Alternate which goes first, so neither always runs on the other's warm caches.
            if (i % 2 == 0)
            {
                modelTimes[i] = Time(model, modelInputs);
                baselineTimes[i] = Time(baseline, baselineInputs);
            }
            else
            {
                baselineTimes[i] = Time(baseline, baselineInputs);
                modelTimes[i] = Time(model, modelInputs);
            }
        }
        long peakBytes = Math.Max(peak.Read(), afterLoad);
        var modelResult = Summarize(modelTimes, afterLoad, peakBytes);
        var baselineResult = Summarize(baselineTimes, afterLoad, peakBytes);
        return new PairedBenchmarkResult(modelResult, baselineResult, baselineResult.MedianMilliseconds / modelResult.MedianMilliseconds);
    }

    private static double Time(ModelSession session, IReadOnlyDictionary<string, Tensor> inputs)
    {
        long start = Stopwatch.GetTimestamp();
        session.Run(inputs);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private static BenchmarkResult Summarize(double[] times, long afterLoad, long peak)
    {
        Array.Sort(times);
        double median = times[times.Length / 2];
        double p90 = times[Math.Min(times.Length - 1, (int)Math.Ceiling(times.Length * 0.9) - 1)];
        return new BenchmarkResult(median, p90, 1000 / median, times.Length, afterLoad, peak);
    }
}
