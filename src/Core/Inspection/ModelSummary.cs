using System.Text.Json;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Models.TensorFlow;

namespace Quantize.Core.Inspection;

/// <summary>
/// What a model holds, in the spirit of TensorFlow's <c>summarize_graph</c>: its inputs and outputs,
/// an op histogram, its weights and what of it is already quantized. Built by <see cref="Create"/>;
/// rendered by <see cref="ToText"/> and <see cref="WriteJson"/>.
/// </summary>
/// <remarks>
/// The JSON document has these keys, always in this order (docs/inspect.md describes them at length):
/// <list type="table">
/// <item><term><c>format</c></term><description><c>"onnx"</c> or <c>"graphdef"</c>.</description></item>
/// <item><term><c>nodeCount</c></term><description>Nodes of the top-level graph.</description></item>
/// <item><term><c>irVersion</c>, <c>producerName</c>, <c>producerVersion</c>, <c>opsets</c>, <c>graphName</c></term>
/// <description>ONNX only. <c>opsets</c> is an object domain → version, the default domain written <c>ai.onnx</c>.</description></item>
/// <item><term><c>inputs</c>, <c>outputs</c></term><description>Arrays of <c>{"name","dtype","shape"}</c>. <c>dtype</c> is the
/// lower-case element type (<c>float32</c>, <c>int64</c>, <c>quint8</c>, <c>seq(float32)</c>, <c>optional(float32)</c>) or <c>unknown</c>;
/// <c>shape</c> is an array of numbers (fixed dims) and strings (symbolic dims, <c>"?"</c> when unnamed), or null when the rank
/// is unknown. ONNX inputs leave out initializers. GraphDef inputs are the Placeholder nodes; its outputs are the nodes nothing
/// consumes (by data or control input), except Const, NoOp, Assign and Placeholder.</description></item>
/// <item><term><c>ops</c></term><description>Object op type → count over the top-level nodes, most frequent first, then by name.
/// Ops outside ONNX's default domain are keyed <c>domain.OpType</c>.</description></item>
/// <item><term><c>subgraphOps</c></term><description>The same for the nodes inside If/Loop/Scan bodies (ONNX; empty for GraphDef).</description></item>
/// <item><term><c>parameters</c>, <c>weightBytes</c></term><description>Elements and packed bytes of all stored tensors
/// (initializers, Constant values, Const nodes, in every subgraph).</description></item>
/// <item><term><c>parametersByDtype</c></term><description>Object dtype → <c>{"tensors","elements","bytes"}</c>, most bytes first.</description></item>
/// <item><term><c>largestWeights</c></term><description>The 10 largest stored tensors by bytes (ties by name):
/// <c>{"name","dtype","shape","elements","bytes"}</c>.</description></item>
/// <item><term><c>quantized</c></term><description><c>{"tensors": count, "tensorNames": [at most 20], "ops": {op: count}}</c>:
/// stored tensors of a quantized storage type, and the quantization ops of the whole model (subgraphs included).</description></item>
/// <item><term><c>controlEdges</c></term><description>GraphDef only: the number of <c>^name</c> control inputs.</description></item>
/// </list>
/// </remarks>
public sealed class ModelSummary
{
    /// <summary>How many stored tensors <see cref="LargestWeights"/> lists.</summary>
    public const int MaxLargestWeights = 10;

    /// <summary>How many names <see cref="QuantizationSummary.TensorNames"/> lists at most.</summary>
    public const int MaxListedQuantizedTensors = 20;

    internal ModelSummary()
    {
    }

    /// <summary>How errors and reports name the model: its path or display name.</summary>
    public required string Source { get; init; }

    /// <summary>The model's format.</summary>
    public required ModelFormat Format { get; init; }

    /// <summary><c>onnx</c> or <c>graphdef</c>, as written in the JSON document.</summary>
    public string FormatName => Format == ModelFormat.Onnx ? "onnx" : "graphdef";

    /// <summary>The number of nodes of the top-level graph.</summary>
    public required int NodeCount { get; init; }

    /// <summary>ONNX model fields; null for a GraphDef.</summary>
    public OnnxDetails? Onnx { get; init; }

    /// <summary>The graph inputs (ONNX: without initializers; GraphDef: the Placeholder nodes).</summary>
    public required IReadOnlyList<ValueSummary> Inputs { get; init; }

    /// <summary>The graph outputs (GraphDef: the possible outputs, nodes nothing consumes).</summary>
    public required IReadOnlyList<ValueSummary> Outputs { get; init; }

    /// <summary>Op types of the top-level graph, most frequent first, then by name.</summary>
    public required IReadOnlyList<OpCount> Ops { get; init; }

    /// <summary>Op types inside subgraphs (If/Loop/Scan bodies), most frequent first, then by name.</summary>
    public required IReadOnlyList<OpCount> SubgraphOps { get; init; }

    /// <summary>Elements of all stored tensors.</summary>
    public required long Parameters { get; init; }

    /// <summary>Packed bytes of all stored tensors.</summary>
    public required long WeightBytes { get; init; }

    /// <summary>The number of stored tensors.</summary>
    public required int StoredTensors { get; init; }

    /// <summary>Stored tensors per element type, most bytes first, then by type name.</summary>
    public required IReadOnlyList<DtypeTotals> ParametersByDtype { get; init; }

    /// <summary>The <see cref="MaxLargestWeights"/> largest stored tensors, by bytes, ties broken by name.</summary>
    public required IReadOnlyList<WeightSummary> LargestWeights { get; init; }

    /// <summary>Quantized tensors and quantization ops.</summary>
    public required QuantizationSummary Quantized { get; init; }

    /// <summary>GraphDef: the number of control inputs (<c>^name</c>); null for ONNX, which has none.</summary>
    public int? ControlEdges { get; init; }

    /// <summary>Summarizes a loaded model.</summary>
    /// <exception cref="InvalidModelException">A stored tensor is inconsistent (only when the model was loaded without validation).</exception>
    public static ModelSummary Create(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model switch
        {
            OnnxModel onnx => OnnxInspector.Summarize(onnx),
            GraphDefModel graph => GraphDefInspector.Summarize(graph),
            _ => throw new ArgumentException($"Cannot summarize a {model.GetType().Name}.", nameof(model)),
        };
    }

    /// <summary>Writes the summary as one JSON object (keys as listed on this class).</summary>
    public void WriteJson(Utf8JsonWriter writer) => ModelSummaryJson.Write(this, writer);

    /// <summary>The summary as an indented JSON document.</summary>
    public string ToJson() => ModelSummaryJson.ToJson(this);

    /// <summary>The summary as readable text, in the manner of <c>summarize_graph</c>.</summary>
    public string ToText() => ModelSummaryText.Render(this);
}
