using System.Globalization;
using System.Text;

namespace Quantize.Core.Inspection;

/// <summary>Renders a <see cref="ModelSummary"/> as text, after TensorFlow's <c>summarize_graph</c>.</summary>
internal static class ModelSummaryText
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static string Render(ModelSummary s)
    {
        var text = new StringBuilder();
        void Line(string line) => text.Append(line).Append('\n');

        Line($"Model: {s.Source}");
        if (s.Onnx is { } onnx)
        {
            string producer = onnx.ProducerName.Length == 0 ? "unknown" : $"{onnx.ProducerName} {onnx.ProducerVersion}".TrimEnd();
            Line($"Format: ONNX, IR version {onnx.IrVersion}, produced by {producer}, graph '{onnx.GraphName}'");
            Line($"Opsets: {(onnx.Opsets.Count == 0 ? "none" : string.Join(", ", onnx.Opsets.Select(o => $"{o.Domain} {o.Version}")))}");
        }
        else
        {
            Line("Format: TensorFlow GraphDef");
        }
        Line($"Nodes: {s.NodeCount}");

        Values(text, "inputs", s.Inputs);
        Values(text, "outputs", s.Outputs);

        Line($"Op types used: {Histogram(s.Ops)}");
        if (s.SubgraphOps.Count > 0) Line($"Op types in subgraphs: {Histogram(s.SubgraphOps)}");

        string shortForm = s.Parameters >= 1000 ? $" ({Short(s.Parameters)})" : "";
        Line($"Found {s.Parameters.ToString(Invariant)}{shortForm} parameters in {Plural(s.StoredTensors, "stored tensor")}, {Bytes(s.WeightBytes)} of weights");
        foreach (var t in s.ParametersByDtype)
            Line($"  {t.Dtype}: {Plural(t.Tensors, "tensor")}, {t.Elements.ToString(Invariant)} elements, {Bytes(t.Bytes)}");

        if (s.LargestWeights.Count > 0)
        {
            Line("Largest weights:");
            int width = s.LargestWeights.Max(w => w.Name.Length);
            foreach (var w in s.LargestWeights)
                Line($"  {w.Name.PadRight(width)}  {w.Dtype} [{string.Join(",", w.Shape.Select(d => d.ToString(Invariant)))}]  {Bytes(w.Bytes)}");
        }

        var q = s.Quantized;
        if (q.TensorCount == 0 && q.Ops.Count == 0)
        {
            Line("Quantized: nothing (no quantized tensors, no quantization ops)");
        }
        else
        {
            string more = q.TensorCount > q.TensorNames.Count ? $", ... ({q.TensorCount} total)" : "";
            Line($"Quantized tensors: {q.TensorCount}{(q.TensorCount > 0 ? $" ({string.Join(", ", q.TensorNames)}{more})" : "")}");
            Line($"Quantization ops: {Histogram(q.Ops)}");
        }

        if (s.ControlEdges is int edges) Line($"Found {edges} control edges");
        return text.ToString();
    }

    private static void Values(StringBuilder text, string what, IReadOnlyList<ValueSummary> values)
    {
        text.Append($"Found {values.Count} possible {what}{(values.Count == 0 ? "" : ":")}\n");
        foreach (var v in values)
        {
            string shape = v.Shape is null ? "unknown" : $"[{string.Join(",", v.Shape)}]";
            text.Append($"  (name={v.Name}, type={v.Dtype}, shape={shape})\n");
        }
    }

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

    private static string Histogram(IReadOnlyList<OpCount> ops) =>
        ops.Count == 0 ? "none" : string.Join(", ", ops.Select(o => $"{o.Count} {o.Op}"));

    /// <summary>A count in summarize_graph's short form: 1.23k, 4.56M, 7.89B.</summary>
    internal static string Short(long value) => value switch
    {
        >= 1_000_000_000 => (value / 1e9).ToString("0.##", Invariant) + "B",
        >= 1_000_000 => (value / 1e6).ToString("0.##", Invariant) + "M",
        >= 1_000 => (value / 1e3).ToString("0.##", Invariant) + "k",
        _ => value.ToString(Invariant),
    };

    /// <summary>A byte count with a binary unit: 512 B, 4.5 KiB, 44.59 MiB.</summary>
    internal static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => (bytes / (double)(1L << 30)).ToString("0.##", Invariant) + " GiB",
        >= 1L << 20 => (bytes / (double)(1L << 20)).ToString("0.##", Invariant) + " MiB",
        >= 1L << 10 => (bytes / (double)(1L << 10)).ToString("0.##", Invariant) + " KiB",
        _ => bytes.ToString(Invariant) + " B",
    };
}
