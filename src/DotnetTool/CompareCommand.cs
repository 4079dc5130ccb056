using System.CommandLine;
using System.Globalization;
using Quantize.Core.Evaluation;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Tool;

/// <summary>
/// <c>dotnet quantize compare FLOAT QUANTIZED</c>: runs both models on the same inputs and reports, per output, how far
/// the quantized one drifts (cosine, max abs error, SQNR, top-1 agreement); <c>--layers</c> ranks the intermediate tensors
/// both models have by SQNR.
/// </summary>
internal static class CompareCommand
{
    /// <summary>Layers listed in the text output (the JSON lists all).</summary>
    private const int TextLayers = 25;

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var reference = new Argument<string>("FLOAT") { Description = "The float (reference) ONNX model." };
        var candidate = new Argument<string>("QUANTIZED") { Description = "The quantized ONNX model (same inputs and outputs)." };
        var data = new Option<string?>("--data")
        {
            Description = "Input samples: a folder of sample folders (NAME.pb or NAME.npy per input), of .npz files, of .npy files (one-input models), "
                + "or one sample's files. Without it, one input set is generated from the declared types (and the output says so).",
        };
        var layers = new Option<bool>("--layers") { Description = "Also compare the intermediate tensors both models have (matched by name), worst SQNR first." };
        var minCosine = new Option<double?>("--min-cosine") { Description = "Exit 1 unless every output's mean cosine is at least this (for CI).", HelpName = "C" };
        var threads = new Option<int>("--threads") { Description = "Threads for the runs (default: all cores; the result does not depend on it).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var json = new Option<bool>("--json") { Description = "Print one JSON document (fields: see the README)." };
        var command = new Command("compare", "Run a float model and its quantized form on the same inputs and measure the difference: per output cosine, max abs error, SQNR and top-1 agreement.")
        {
            reference, candidate, data, layers, minCosine, threads, json,
        };
        command.WithExamples(
            "dotnet quantize compare encoder.onnx encoder.int8.onnx --data calibration/",
            "dotnet quantize compare resnet.onnx resnet.int8.onnx --data calibration/ --layers",
            "dotnet quantize compare model.onnx model.int8.onnx --min-cosine 0.99 --json > compare.json");
        command.SetAction(parsed =>
        {
            string floatPath = parsed.GetValue(reference)!, quantizedPath = parsed.GetValue(candidate)!;
            var floatModel = LoadOnnx(floatPath);
            var quantizedModel = LoadOnnx(quantizedPath);
            string? folder = parsed.GetValue(data);
            var inputs = Kernels.Runtime.ModelSession.Create(floatModel).Inputs;
            var samples = folder is null ? null : InputSets.Open(folder, inputs);
            AccuracyReport report;
            try
            {
                report = AccuracyEvaluator.Compare(floatModel, quantizedModel, samples, Math.Max(1, parsed.GetValue(threads)), parsed.GetValue(layers));
            }
            catch (ArgumentException e)
            {
                throw new UsageException($"the two models cannot be run on these inputs: {e.Message}");
            }
            double? target = parsed.GetValue(minCosine);
            bool met = target is not double t || report.WorstMeanCosine >= t;

            if (parsed.GetValue(json))
            {
                stdout.WriteLine(JsonText.Of(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("float", floatPath);
                    w.WriteString("quantized", quantizedPath);
                    if (folder is null) w.WriteNull("data");
                    else w.WriteString("data", folder);
                    QuantizationSummary.WriteAccuracy(w, "accuracy", report);
                    if (target is double c) w.WriteNumber("minCosine", c);
                    else w.WriteNull("minCosine");
                    w.WriteBoolean("met", met);
                    w.WriteEndObject();
                }));
            }
            else
            {
                WriteText(stdout, floatPath, quantizedPath, folder, report);
            }
            stdout.Flush();
            if (!met)
            {
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"error: the accuracy target is not met: the worst output's mean cosine is {report.WorstMeanCosine:F5}, below {target}."));
                return QuantizeCli.Failure;
            }
            return QuantizeCli.Success;
        });
        return command;
    }

    /// <summary>Loads an ONNX model; a TensorFlow graph is a usage error (the comparison runs ONNX models).</summary>
    internal static OnnxModel LoadOnnx(string path) => Model.Load(path) as OnnxModel
        ?? throw new UsageException($"{path} is a TensorFlow GraphDef; compare runs ONNX models only.");

    private static void WriteText(TextWriter stdout, string floatPath, string quantizedPath, string? folder, AccuracyReport report)
    {
        var inv = CultureInfo.InvariantCulture;
        stdout.WriteLine($"Float: {floatPath}");
        stdout.WriteLine($"Quantized: {quantizedPath}");
        stdout.WriteLine(report.GeneratedInputs
            ? $"Inputs: one set {InputSets.GeneratedDescription}; pass --data DIR to compare on real inputs."
            : string.Create(inv, $"Inputs: {report.Samples} sample(s) from {folder}"));
        foreach (var o in report.Outputs) stdout.WriteLine("Output " + Line(o));
        if (report.Outputs.Count == 0) stdout.WriteLine("No float output is in both models: nothing to compare.");
        if (report.Layers is { } layerResults)
        {
            stdout.WriteLine(string.Create(inv, $"Layers: {layerResults.Count} intermediate tensors in both models, worst SQNR first:"));
            foreach (var layer in layerResults.Take(TextLayers)) stdout.WriteLine("  " + Line(layer));
            if (layerResults.Count > TextLayers) stdout.WriteLine(string.Create(inv, $"  ... {layerResults.Count - TextLayers} more (--json lists all)"));
        }
    }

    private static string Line(TensorAccuracy o)
    {
        string top1 = o.Top1Agreement is double t ? string.Create(CultureInfo.InvariantCulture, $", top-1 agreement {t:P1}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"{o.Name}: cosine mean {o.MeanCosine:F5} (worst {o.MinCosine:F5}), max abs error {o.MaxAbsError:G4}, SQNR {o.Sqnr:F1} dB{top1}");
    }
}
