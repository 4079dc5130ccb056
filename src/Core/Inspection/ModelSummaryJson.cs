using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Quantize.Core.Inspection;

/// <summary>Writes a <see cref="ModelSummary"/> as JSON, keys in the fixed order documented on <see cref="ModelSummary"/>.</summary>
internal static class ModelSummaryJson
{
    /// <summary>Indented, and only what JSON requires escaped: op and tensor names stay readable (the output is not for HTML).</summary>
    public static readonly JsonWriterOptions Options = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string ToJson(ModelSummary summary)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, Options))
            Write(summary, writer);
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    public static void Write(ModelSummary summary, Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("format", summary.FormatName);
        writer.WriteNumber("nodeCount", summary.NodeCount);
        if (summary.Onnx is { } onnx)
        {
            writer.WriteNumber("irVersion", onnx.IrVersion);
            writer.WriteString("producerName", onnx.ProducerName);
            writer.WriteString("producerVersion", onnx.ProducerVersion);
            writer.WriteStartObject("opsets");
            foreach (var opset in onnx.Opsets) writer.WriteNumber(opset.Domain, opset.Version);
            writer.WriteEndObject();
            writer.WriteString("graphName", onnx.GraphName);
        }
        WriteValues(writer, "inputs", summary.Inputs);
        WriteValues(writer, "outputs", summary.Outputs);
        WriteOps(writer, "ops", summary.Ops);
        WriteOps(writer, "subgraphOps", summary.SubgraphOps);
        writer.WriteNumber("parameters", summary.Parameters);
        writer.WriteNumber("weightBytes", summary.WeightBytes);

        writer.WriteStartObject("parametersByDtype");
        foreach (var totals in summary.ParametersByDtype)
        {
            writer.WriteStartObject(totals.Dtype);
            writer.WriteNumber("tensors", totals.Tensors);
            writer.WriteNumber("elements", totals.Elements);
            writer.WriteNumber("bytes", totals.Bytes);
            writer.WriteEndObject();
        }
        writer.WriteEndObject();

        writer.WriteStartArray("largestWeights");
        foreach (var weight in summary.LargestWeights)
        {
            writer.WriteStartObject();
            writer.WriteString("name", weight.Name);
            writer.WriteString("dtype", weight.Dtype);
            writer.WriteStartArray("shape");
            foreach (long dim in weight.Shape) writer.WriteNumberValue(dim);
            writer.WriteEndArray();
            writer.WriteNumber("elements", weight.Elements);
            writer.WriteNumber("bytes", weight.Bytes);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();

        writer.WriteStartObject("quantized");
        writer.WriteNumber("tensors", summary.Quantized.TensorCount);
        writer.WriteStartArray("tensorNames");
        foreach (string name in summary.Quantized.TensorNames) writer.WriteStringValue(name);
        writer.WriteEndArray();
        WriteOps(writer, "ops", summary.Quantized.Ops);
        writer.WriteEndObject();

        if (summary.ControlEdges is int controlEdges) writer.WriteNumber("controlEdges", controlEdges);
        writer.WriteEndObject();
        writer.Flush();
    }

    private static void WriteValues(Utf8JsonWriter writer, string key, IReadOnlyList<ValueSummary> values)
    {
        writer.WriteStartArray(key);
        foreach (var value in values)
        {
            writer.WriteStartObject();
            writer.WriteString("name", value.Name);
            writer.WriteString("dtype", value.Dtype);
            if (value.Shape is null)
            {
                writer.WriteNull("shape");
            }
            else
            {
                writer.WriteStartArray("shape");
                foreach (var dim in value.Shape)
                {
                    if (dim.Size is long size) writer.WriteNumberValue(size);
                    else writer.WriteStringValue(dim.Symbol);
                }
                writer.WriteEndArray();
            }
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    }

    private static void WriteOps(Utf8JsonWriter writer, string key, IReadOnlyList<OpCount> ops)
    {
        writer.WriteStartObject(key);
        foreach (var op in ops) writer.WriteNumber(op.Op, op.Count);
        writer.WriteEndObject();
    }
}
