using System.Diagnostics;
using Quantize.Core.Calibration;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using Quantize.Tests;

namespace Quantize.Core.Tests.Calibration;

/// <summary>Memory measurements see the whole process: these tests run alone, after the parallel ones.</summary>
[CollectionDefinition(nameof(MemoryMeasurements), DisableParallelization = true)]
public sealed class MemoryMeasurements;

/// <summary>Calibration memory does not grow with the number of samples.</summary>
[Collection(nameof(MemoryMeasurements))]
public class CalibrationMemoryTests
{
    [Fact]
    public void Calibrating_ResNet18_on_200_samples_retains_no_more_than_on_20()
    {
        var model = OnnxModel.Load(RealModels.ResNet18Path);
        string[] names = CalibratorTests.ResNet18Values(model);
        var folder = CalibrationData.FromFolder(SharedData.Require("calibration/resnet18"), model);
        // One thread: the shared array pools keep per-thread arrays, and which pool threads ran which kernel would
        // otherwise move the retained figure by a few MB from run to run.
        var options = new QuantizationOptions { Threads = 1 };

        // Warm-up (one pass over the folder): the JIT and the runtime's array pools reach their steady size.
        Measure(model, names, folder, options, 36);
        // One baseline for both runs: memory other tests leave behind (pooled arrays the runtime trims at times
        // of its choosing) can then only make a later figure smaller, never larger.
        long baseline = GC.GetTotalMemory(forceFullCollection: true);
        var twenty = Measure(model, names, folder, options, 20);
        var twoHundred = Measure(model, names, folder, options, 200);
        Assert.Equal(200 * twenty.Values / 20, twoHundred.Values);

        long retainedTwenty = twenty.Held - baseline, retainedTwoHundred = twoHundred.Held - baseline;
        string report = $"values per sample {twenty.Values / 20:N0}; managed memory held with the statistics complete: "
            + $"20 samples {twenty.Held:N0} B, 200 samples {twoHundred.Held:N0} B, that is {retainedTwenty:N0} B and "
            + $"{retainedTwoHundred:N0} B above the baseline; peak working set (garbage collected after each sample): "
            + $"20 samples {twenty.PeakWorkingSet:N0} B, 200 samples {twoHundred.PeakWorkingSet:N0} B";
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        Assert.True(twoHundred.Held <= twenty.Held * 1.1, report);
        // Sharper: what the 200-sample run holds beyond the 20-sample run is within 10% of what the latter added to the
        // baseline (about 1.3 MB: the statistics). A difference, so memory trimmed meanwhile cancels out.
        Assert.True(twoHundred.Held - twenty.Held <= 0.1 * Math.Max(retainedTwenty, 1 << 20), report);
        Assert.True(twoHundred.PeakWorkingSet <= twenty.PeakWorkingSet * 1.1, report);
    }

    /// <summary>
    /// Calibrates on <paramref name="count"/> samples (the folder's, cycled) and returns the managed memory held
    /// once the statistics are complete (they are kept alive) and the largest working set seen after any sample.
    /// Each sample's outputs become garbage at once; left to itself the collector lets a few hundred MB of it pile
    /// up at times of its choosing, so the test collects it after every sample to make the working set a measure
    /// of what calibration holds, not of GC timing.
    /// </summary>
    private static (long Held, long PeakWorkingSet, long Values) Measure(OnnxModel model, string[] names, CalibrationData folder, QuantizationOptions options, int count)
    {
        var samples = CalibrationData.FromSamples(Cycle(folder, count), "cycled ResNet18 samples", count);
        using var process = Process.GetCurrentProcess();
        long peak = 0;
        var progress = new CalibratorTests.SyncProgress(_ =>
        {
            GC.Collect();
            process.Refresh();
            peak = Math.Max(peak, process.WorkingSet64);
        });
        var statistics = Calibrator.Collect(model, names, samples, options, progress, TestContext.Current.CancellationToken);
        long held = GC.GetTotalMemory(forceFullCollection: true);
        long values = statistics.Values.Sum(s => s.Count);
        GC.KeepAlive(statistics);
        return (held, peak, values);
    }

    private static IEnumerable<CalibrationSample> Cycle(CalibrationData folder, int count)
    {
        int produced = 0;
        while (true)
        {
            foreach (var sample in folder)
            {
                if (produced++ == count) yield break;
                yield return sample;
            }
        }
    }
}
