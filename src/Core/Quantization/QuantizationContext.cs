using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization;

/// <summary>
/// One quantization in progress: a copy of the source model (the source is never changed), the constant weights
/// found in it, fresh names, the int8 weights written so far and the decisions taken. Each mode is a pass over it.
/// </summary>
internal sealed class QuantizationContext
{
    private readonly HashSet<string> _replacedWeights = new(StringComparer.Ordinal);
    private readonly List<NodeProto> _replacedChains = [];

    public QuantizationContext(OnnxModel source, QuantizationOptions options, IReadOnlySet<string>? keepFloat = null)
    {
        Options = options;
        Proto = source.Proto.Clone();
        UpgradeOpset();
        Model = new OnnxModel(Proto, source.Source, source.BaseDirectory);
        Weights = new ConstantWeights(Model);
        Names = new GraphNames(Proto.Graph);
        Selection = new NodeSelection(options, keepFloat);
        Opset = OnnxBuild.DefaultOpset(Proto);
        Int8 = new Int8Weights(this);
    }

    public QuantizationOptions Options { get; }

    /// <summary>The copy being rewritten.</summary>
    public ModelProto Proto { get; }

    public OnnxModel Model { get; }

    public GraphProto Graph => Proto.Graph;

    public ConstantWeights Weights { get; }

    public GraphNames Names { get; }

    public NodeSelection Selection { get; }

    /// <summary>The default-domain opset the model imports.</summary>
    public long Opset { get; }

    public Int8Weights Int8 { get; }

    public List<NodeDecision> Decisions { get; } = [];

    /// <summary>Things worth telling the user that are not about one node (an opset upgrade, say).</summary>
    public List<string> Notes { get; } = [];

    /// <summary>
    /// Raises an old opset to what the mode needs (per-axis DequantizeLinear: 13; DynamicQuantizeLinear: 11;
    /// DequantizeLinear: 10), as ONNX Runtime's quantizer does, when that leaves every op's meaning unchanged.
    /// </summary>
    private void UpgradeOpset()
    {
        if (Options.Mode == QuantizationMode.Int4) return; // MatMulNBits is in its own domain; the standard form needs 21, not an upgrade
        long before = OnnxBuild.DefaultOpset(Proto);
        long minimum = Options.Mode == QuantizationMode.Weights ? 10 : 11;
        long wanted = Options.PerChannel ? 13 : minimum;
        if (before >= wanted) return;
        string? refusal = OpsetUpgrade.TryUpgrade(Proto, wanted);
        if (refusal is not null && wanted > minimum && before < minimum) refusal = OpsetUpgrade.TryUpgrade(Proto, minimum) is null ? null : refusal;
        long after = OnnxBuild.DefaultOpset(Proto);
        if (after > before) Notes.Add($"opset upgraded from {before} to {after} for the quantization ops (every op in the model means the same there)");
        if (refusal is not null) Notes.Add(refusal);
    }

    /// <summary>The node's name, or its first output when it has none.</summary>
    public static string Label(NodeProto node) => node.Name.Length > 0 ? node.Name : node.Output.FirstOrDefault() ?? node.OpType;

    public void Keep(NodeProto node, string reason) => Decisions.Add(new NodeDecision(Label(node), node.OpType, false, reason));

    public void Quantized(NodeProto node, string how) => Decisions.Add(new NodeDecision(Label(node), node.OpType, true, how));

    /// <summary>Notes that a rewrite stopped reading <paramref name="weight"/>: it is removed at the end if nothing else reads it.</summary>
    public void Replaced(FloatWeight weight)
    {
        _replacedWeights.Add(weight.Root.Name);
        _replacedWeights.Add(weight.Value);
        _replacedChains.AddRange(weight.Chain);
    }

    /// <summary>
    /// Why <paramref name="node"/> stays float before looking at its weights (the options), or null.
    /// </summary>
    public string? RefuseByOptions(NodeProto node) => Selection.Refuse(node);

    /// <summary>Why <paramref name="weight"/> is not worth quantizing, or null.</summary>
    public string? RefuseWeight(FloatWeight? weight, string role = "weight")
    {
        if (weight is null) return $"the {role} is not a constant float tensor";
        if (weight.Values.LongLength < Options.MinimumSize) return $"the {role} has fewer than {Options.MinimumSize} elements";
        foreach (float v in weight.Values)
        {
            if (!float.IsFinite(v)) return $"the {role} holds NaN or infinite values";
        }
        return null;
    }

    /// <summary>Removes the float weights and Constant/Cast/Identity chains nothing reads any more; returns the result.</summary>
    public QuantizationResult Finish()
    {
        DeadValues.Remove(Graph, _replacedWeights, _replacedChains);
        return new QuantizationResult(Model, Decisions) { Notes = Notes };
    }
}
