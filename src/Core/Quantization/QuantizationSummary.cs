using System.Globalization;
using System.Text.Json;
using Quantize.Core.Evaluation;

namespace Quantize.Core.Quantization;

/// <summary>A finished quantization as the front ends report it: the result, the files, their sizes and the time taken.</summary>
/// <param name="Source">The source model's path.</param>
/// <param name="Output">The written model's path.</param>
/// <param name="Options">The options used.</param>
/// <param name="Result">The quantizer's result.</param>
/// <param name="SourceBytes">The source file's size (with its external data).</param>
/// <param name="OutputBytes">The output file's size (with its external data).</param>
/// <param name="Seconds">Wall-clock time.</param>
public sealed record QuantizationSummary(string Source, string Output, QuantizationOptions Options, QuantizationResult Result, long SourceBytes, long OutputBytes, double Seconds)
{
    /// <summary>Output size over source size.</summary>
    public double SizeRatio => SourceBytes == 0 ? 0 : (double)OutputBytes / SourceBytes;

    /// <summary>A few lines for a terminal: sizes, mode, what was quantized and what was not (grouped by reason), accuracy, time.</summary>
    public string ToText()
    {
        var text = new System.Text.StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        text.AppendLine(inv, $"Quantized {Source} -> {Output} ({Options.Mode.ToString().ToLowerInvariant()})");
        text.AppendLine(inv, $"Size: {Mib(SourceBytes)} -> {Mib(OutputBytes)} ({SizeRatio:P1})");
        var quantized = Result.Decisions.Where(d => d.Quantized).GroupBy(d => d.OpType).Select(g => $"{g.Count()} {g.Key}");
        text.AppendLine(inv, $"Quantized: {Result.QuantizedCount} nodes ({string.Join(", ", quantized)})");
        foreach (var group in Result.Decisions.Where(d => !d.Quantized).GroupBy(d => (d.OpType, d.Reason)).OrderByDescending(g => g.Count()))
            text.AppendLine(inv, $"Left float: {group.Count()} {group.Key.OpType}: {group.Key.Reason}");
        foreach (var note in Result.Notes) text.AppendLine(inv, $"Note: {note}");
        if (Result.Accuracy is { } accuracy)
        {
            string on = accuracy.GeneratedInputs ? "generated inputs (no data given)" : $"{accuracy.Samples} samples";
            foreach (var o in accuracy.Outputs)
            {
                string top1 = o.Top1Agreement is double t ? $", top-1 agreement {t:P1}" : "";
                text.AppendLine(inv, $"Accuracy ({on}): {o.Name}: cosine mean {o.MeanCosine:F5} (worst {o.MinCosine:F5}), max abs error {o.MaxAbsError:G4}, SQNR {o.Sqnr:F1} dB{top1}");
            }
            // The report holds every layer; a terminal gets the worst few.
            foreach (var layer in (accuracy.Layers ?? []).Take(5))
                text.AppendLine(inv, $"Layer: {layer.Name}: SQNR {layer.Sqnr:F1} dB, cosine mean {layer.MeanCosine:F5}");
        }
        if (Options.MinimumCosine is double target)
        {
            string kept = Result.KeptFloatForAccuracy.Count == 0 ? "no layer kept float" : "kept float: " + string.Join(", ", Result.KeptFloatForAccuracy);
            text.AppendLine(inv, $"Target: cosine >= {target} {(Result.TargetMet == true ? "met" : "NOT met")} ({kept})");
        }
        text.AppendLine(inv, $"Time: {Seconds:F1} s");
        return text.ToString();
    }

    /// <summary>One JSON document (keys documented in docs/QUANTIZER.md).</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("source", Source);
            json.WriteString("output", Output);
            json.WriteString("sourceSha256", Result.SourceSha256);
            json.WriteString("mode", Options.Mode.ToString().ToLowerInvariant());
            json.WritePropertyName("options");
            json.WriteRawValue(Quantizer.OptionsJson(Options));
            json.WriteNumber("sourceBytes", SourceBytes);
            json.WriteNumber("outputBytes", OutputBytes);
            json.WriteNumber("sizeRatio", Math.Round(SizeRatio, 5));
            json.WriteNumber("quantizedNodes", Result.QuantizedCount);
            json.WriteNumber("floatNodes", Result.Decisions.Count - Result.QuantizedCount);
            json.WriteStartArray("notes");
            foreach (var note in Result.Notes) json.WriteStringValue(note);
            json.WriteEndArray();
            json.WriteStartArray("decisions");
            foreach (var d in Result.Decisions)
            {
                json.WriteStartObject();
                json.WriteString("node", d.Node);
                json.WriteString("opType", d.OpType);
                json.WriteBoolean("quantized", d.Quantized);
                json.WriteString("reason", d.Reason);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            if (Result.Accuracy is { } accuracy) WriteAccuracy(json, "accuracy", accuracy);
            else json.WriteNull("accuracy");
            if (Options.MinimumCosine is double target)
            {
                json.WriteStartObject("target");
                json.WriteNumber("minimumCosine", target);
                json.WriteBoolean("met", Result.TargetMet == true);
                json.WriteStartArray("keptFloat");
                foreach (var node in Result.KeptFloatForAccuracy) json.WriteStringValue(node);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("target");
            }
            json.WriteNumber("seconds", Math.Round(Seconds, 3));
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>Writes an accuracy report as a JSON object property.</summary>
    public static void WriteAccuracy(Utf8JsonWriter json, string name, AccuracyReport accuracy)
    {
        json.WriteStartObject(name);
        json.WriteNumber("samples", accuracy.Samples);
        json.WriteBoolean("generatedInputs", accuracy.GeneratedInputs);
        WriteTensors(json, "outputs", accuracy.Outputs);
        if (accuracy.Layers is not null) WriteTensors(json, "layers", accuracy.Layers);
        json.WriteEndObject();
    }

    private static void WriteTensors(Utf8JsonWriter json, string name, IEnumerable<TensorAccuracy> tensors)
    {
        json.WriteStartArray(name);
        foreach (var o in tensors)
        {
            json.WriteStartObject();
            json.WriteString("name", o.Name);
            Number(json, "meanCosine", o.MeanCosine);
            Number(json, "minCosine", o.MinCosine);
            Number(json, "maxAbsError", o.MaxAbsError);
            Number(json, "sqnrDb", o.Sqnr);
            if (o.Top1Agreement is double t) json.WriteNumber("top1Agreement", Math.Round(t, 6));
            else json.WriteNull("top1Agreement");
            json.WriteNumber("samples", o.Samples);
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }

    /// <summary>JSON has no infinity or NaN: those become null.</summary>
    private static void Number(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value)) json.WriteNumber(name, Math.Round(value, 6));
        else json.WriteNull(name);
    }

    private static string Mib(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1048576.0:F1} MiB");
}
