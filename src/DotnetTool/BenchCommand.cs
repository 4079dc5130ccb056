using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Quantize.Core.Running;
using Quantize.Kernels.Runtime;

namespace Quantize.Tool;

/// <summary>
/// <c>dotnet quantize bench MODEL</c>: latency (median, p90), throughput and memory on our runtime; with <c>--baseline</c>,
/// the baseline is timed in the same run, interleaved, and the speed ratio reported.
/// </summary>
internal static class Bench
{
    public static Command Create(TextWriter stdout)
    {
        var model = new Argument<string>("MODEL") { Description = "The model to time (any model the runtime loads)." };
        var data = new Option<string?>("--data")
        {
            Description = "Inputs from a folder: one sample's NAME.pb/NAME.npy/input_N.pb files (or the first of a set of samples). Without it, inputs are generated from the declared types.",
        };
        var baseline = new Option<string?>("--baseline") { Description = "A model to time against in the same run (e.g. the float original), runs interleaved; reports the speedup.", HelpName = "FLOAT" };
        var threads = new Option<int>("--threads") { Description = "Threads for the kernels (default: all cores).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var batch = new Option<int>("--batch") { Description = "Run batches of B: the inputs repeated B times along the first axis (default 1).", DefaultValueFactory = _ => 1, HelpName = "B" };
        var iterations = new Option<int>("--iterations") { Description = "Timed runs (default 20).", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed runs first (default 30: lets the JIT settle).", DefaultValueFactory = _ => 30 };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (fields: see the README)." };
        var bench = new Command("bench", "Time a model on Quantize.Kernels' runtime: median and p90 latency, runs per second, memory while running; optionally against a baseline.")
        {
            model, data, baseline, threads, batch, iterations, warmup, json,
        };
        bench.WithExamples(
            "dotnet quantize bench encoder.int8.onnx --data samples/s000 --threads 2",
            "dotnet quantize bench encoder.int8.onnx --baseline encoder.onnx --json",
            "dotnet quantize bench encoder.int8.onnx --batch 8 --iterations 50");
        bench.SetAction(parsed =>
        {
            string path = parsed.GetValue(model)!;
            string? baselinePath = parsed.GetValue(baseline);
            int threadCount = Math.Max(1, parsed.GetValue(threads));
            int batchSize = parsed.GetValue(batch);
            if (batchSize < 1) throw new UsageException($"--batch {batchSize}: give a batch size of 1 or more.");
            string? folder = parsed.GetValue(data);
            var options = new SessionOptions { Threads = threadCount };

            using var session = ModelSession.Load(path, options);
            var inputs = Inputs(session, folder, batchSize);
            int warm = Math.Max(0, parsed.GetValue(warmup)), runs = Math.Max(1, parsed.GetValue(iterations));
            BenchmarkResult result;
            PairedBenchmarkResult? paired = null;
            if (baselinePath is null)
            {
                result = Guarded(() => SessionBenchmark.Run(session, inputs, warm, runs));
            }
            else
            {
                using var other = ModelSession.Load(baselinePath, options);
                var otherInputs = Inputs(other, folder, batchSize);
                paired = Guarded(() => PairedBenchmark.Run(session, inputs, other, otherInputs, warm, runs));
                result = paired.Model;
            }

            var report = new Report(path, FileBytes(path), threadCount, batchSize, folder, result, baselinePath, paired);
            stdout.WriteLine(parsed.GetValue(json) ? report.ToJson() : report.ToText());
            stdout.Flush();
            return QuantizeCli.Success;
        });
        return bench;
    }

    private static IReadOnlyDictionary<string, Tensor> Inputs(ModelSession session, string? folder, int batch)
    {
        var one = folder is null ? InputSets.Generate(session.Inputs) : InputSets.First(folder, session.Inputs);
        return InputSets.Batch(one, session.Inputs, batch);
    }

    /// <summary>A run refused for its inputs (wrong type or shape) is a usage error, not a crash.</summary>
    private static T Guarded<T>(Func<T> run)
    {
        try
        {
            return run();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }
    }

    private static long FileBytes(string path) => new FileInfo(path) is { Exists: true } file ? file.Length : 0;

    private sealed record Report(string Model, long ModelBytes, int Threads, int Batch, string? Folder, BenchmarkResult Result, string? BaselinePath, PairedBenchmarkResult? Paired)
    {
        public string ToText()
        {
            var inv = CultureInfo.InvariantCulture;
            var text = new System.Text.StringBuilder();
            text.AppendLine(inv, $"Model: {Model} ({ModelBytes / 1048576.0:F1} MiB), {Threads} thread(s), batch {Batch}, inputs {(Folder is null ? InputSets.GeneratedDescription : "from " + Folder)}");
            text.AppendLine(inv, $"Latency: median {Result.MedianMilliseconds:F2} ms, p90 {Result.P90Milliseconds:F2} ms ({Result.RunsPerSecond:F1} runs/s, {Result.RunsPerSecond * Batch:F1} items/s over {Result.Iterations} runs)");
            if (Paired is { } p)
            {
                text.AppendLine(inv, $"Baseline: {BaselinePath} ({FileBytes(BaselinePath!) / 1048576.0:F1} MiB): median {p.Baseline.MedianMilliseconds:F2} ms, p90 {p.Baseline.P90Milliseconds:F2} ms (runs interleaved with the model's)");
                text.AppendLine(inv, $"Speedup: {p.Speedup:F2}x (baseline median / model median)");
            }
            text.Append(inv, $"Memory: {Result.WorkingSetAfterLoadBytes / 1048576.0:F1} MiB after load, peak {Result.PeakWorkingSetWhileRunningBytes / 1048576.0:F1} MiB while running{(Paired is null ? "" : " (both models loaded)")}");
            return text.ToString();
        }

        public string ToJson() => JsonText.Of(w =>
        {
            w.WriteStartObject();
            w.WriteString("model", Model);
            w.WriteNumber("modelBytes", ModelBytes);
            w.WriteNumber("threads", Threads);
            w.WriteNumber("batch", Batch);
            w.WriteString("inputs", Folder ?? "generated");
            Latency(w, Result);
            w.WriteNumber("itemsPerSecond", Math.Round(Result.RunsPerSecond * Batch, 2));
            w.WriteNumber("workingSetAfterLoadBytes", Result.WorkingSetAfterLoadBytes);
            w.WriteNumber("peakWorkingSetBytes", Result.PeakWorkingSetWhileRunningBytes);
            if (Paired is { } p)
            {
                w.WriteStartObject("baseline");
                w.WriteString("model", BaselinePath);
                w.WriteNumber("modelBytes", FileBytes(BaselinePath!));
                Latency(w, p.Baseline);
                w.WriteEndObject();
                w.WriteNumber("speedup", Math.Round(p.Speedup, 3));
            }
            else
            {
                w.WriteNull("baseline");
                w.WriteNull("speedup");
            }
            w.WriteEndObject();
        });

        private static void Latency(Utf8JsonWriter w, BenchmarkResult result)
        {
            w.WriteNumber("medianMilliseconds", Math.Round(result.MedianMilliseconds, 3));
            w.WriteNumber("p90Milliseconds", Math.Round(result.P90Milliseconds, 3));
            w.WriteNumber("runsPerSecond", Math.Round(result.RunsPerSecond, 2));
            w.WriteNumber("iterations", result.Iterations);
        }
    }
}
