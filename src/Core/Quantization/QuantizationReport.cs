using Quantize.Core.Evaluation;

namespace Quantize.Core.Quantization;

/// <summary>What the quantizer decided for one node, and why.</summary>
/// <param name="Node">The node's name (or its first output).</param>
/// <param name="OpType">The op type.</param>
/// <param name="Quantized">True if the node now runs quantized.</param>
/// <param name="Reason">Why, in a few words.</param>
public sealed record NodeDecision(string Node, string OpType, bool Quantized, string Reason);

/// <summary>The result of quantizing a model: the new model and the decisions behind it.</summary>
/// <param name="Output">The quantized model (the source is never changed): an ONNX model, or a TensorFlow GraphDef for a GraphDef source.</param>
/// <param name="Decisions">One entry per node considered.</param>
public sealed record QuantizationResult(Kernels.Models.Model Output, IReadOnlyList<NodeDecision> Decisions)
{
    /// <summary>The quantized ONNX model.</summary>
    /// <exception cref="InvalidOperationException">The source was a TensorFlow GraphDef: read <see cref="Output"/>.</exception>
    public Kernels.Models.Onnx.OnnxModel Model => Output as Kernels.Models.Onnx.OnnxModel
        ?? throw new InvalidOperationException($"{Output.Source}: the quantized model is a TensorFlow GraphDef; read QuantizationResult.Output.");

    /// <summary>How many nodes were quantized.</summary>
    public int QuantizedCount => Decisions.Count(d => d.Quantized);

    /// <summary>The comparison with the float model, when evaluation samples were given or a target was set.</summary>
    public AccuracyReport? Accuracy { get; init; }

    /// <summary>Nodes kept float to meet the accuracy target, in the order they were given up.</summary>
    public IReadOnlyList<string> KeptFloatForAccuracy { get; init; } = [];

    /// <summary>Whether the accuracy target holds (null when none was set).</summary>
    public bool? TargetMet { get; init; }

    /// <summary>Notes about the whole model, such as an opset upgrade.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>SHA-256 of the source model, lowercase hex (also in the output's metadata).</summary>
    public string SourceSha256 { get; init; } = "";
}
