using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Core.Quantization;

/// <summary>
/// The <c>weights</c> mode: the weights of MatMul, Gemm, Conv, ConvTranspose and Gather become 8-bit initializers
/// behind DequantizeLinear, per channel on each op's output-channel axis; activations stay float.
/// </summary>
internal static class WeightOnlyQuantizer
{
    public static void Apply(QuantizationContext context)
    {
        var graph = context.Graph;
        var rewritten = new List<NodeProto>(graph.Node.Count);
        foreach (var node in graph.Node)
        {
            if (node.Domain is not ("" or "ai.onnx") || WeightInput(node) is not int input)
            {
                rewritten.Add(node);
                continue;
            }
            var weight = input < node.Input.Count ? context.Weights.Find(node.Input[input]) : null;
            string? refusal = context.Opset < 10 ? $"opset {context.Opset} predates DequantizeLinear (10)"
                : context.RefuseByOptions(node) ?? context.RefuseWeight(weight);
            int? axis = refusal is null ? ChannelAxis(node, weight!, context) : null;
            if (refusal is null && node.OpType == "Gather" && (GatherAxis(node) != 0 || weight!.Dims.Length != 2))
                refusal = "only row lookups (axis 0) in a 2-D table are quantized";
            if (refusal is not null)
            {
                // A Gather of anything but a float table (shapes, indices) is not a candidate at all.
                if (node.OpType != "Gather" || weight is not null) context.Keep(node, refusal);
                rewritten.Add(node);
                continue;
            }

            var q = context.Int8.Get(weight!, axis);
            string how = $"{context.Options.WeightType.ToString().ToLowerInvariant()} weight {(axis is null ? "per tensor" : $"per channel (axis {axis})")}";
            if (node.OpType == "Gather")
            {
                // Look up 8-bit rows, then dequantize only the rows looked up: the float table never exists.
                string gathered = context.Names.Next(node.Output[0] + "_quantized");
                var lookup = OnnxBuild.Node("Gather", context.Names.Next(QuantizationContext.Label(node) + "_quantized"), [q.Value, node.Input[1]], [gathered]).With("axis", 0);
                var dequantize = DequantizeAfterGather(context, q, gathered, node.Output[0], QuantizationContext.Label(node));
                rewritten.Add(lookup);
                rewritten.Add(dequantize);
            }
            else
            {
                string dequantized = context.Names.Next(node.Input[input] + "_dequantized");
                rewritten.Add(Dequantize(context, q, dequantized, QuantizationContext.Label(node)));
                node.Input[input] = dequantized;
                rewritten.Add(node);
            }
            context.Quantized(node, how);
        }
        graph.Node.Clear();
        graph.Node.AddRange(rewritten);
    }

    /// <summary>A DequantizeLinear node for <paramref name="q"/> producing <paramref name="output"/>.</summary>
    internal static NodeProto Dequantize(QuantizationContext context, QuantizedWeight q, string output, string owner)
    {
        var node = OnnxBuild.Node("DequantizeLinear", context.Names.Next(owner + "_weight_DequantizeLinear"), [q.Value, q.Scale, q.ZeroPoint], [output]);
        return q.Axis is int axis ? node.With("axis", axis) : node;
    }

    /// <summary>DequantizeLinear of gathered rows: the table's per-column scales apply along the last axis.</summary>
    internal static NodeProto DequantizeAfterGather(QuantizationContext context, QuantizedWeight q, string input, string output, string owner)
    {
        var node = OnnxBuild.Node("DequantizeLinear", context.Names.Next(owner + "_DequantizeLinear"), [input, q.Scale, q.ZeroPoint], [output]);
        return q.Axis is null ? node : node.With("axis", -1);
    }

    /// <summary>Which input of <paramref name="node"/> is the weight this mode quantizes, or null for other ops.</summary>
    internal static int? WeightInput(NodeProto node) => node.OpType switch
    {
        "MatMul" or "Gemm" or "Conv" or "ConvTranspose" => 1,
        "Gather" => 0,
        _ => null,
    };

    /// <summary>
    /// The output-channel axis of the weight, or null for per-tensor (per-channel off, an opset without per-axis
    /// DequantizeLinear, or a layout where no single axis is the output channel).
    /// </summary>
    internal static int? ChannelAxis(NodeProto node, FloatWeight weight, QuantizationContext context)
    {
        if (!context.Options.PerChannel || context.Opset < 13 || weight.Dims.Length < 2) return null;
        return node.OpType switch
        {
            "MatMul" => weight.Dims.Length == 2 ? 1 : null,
            "Gemm" => Attribute(node, "transB") == 1 ? 0 : 1,
            "Conv" => 0,
            // [C_in, C_out / group, k...]: axis 1 is the output channel only without groups.
            "ConvTranspose" => (Attribute(node, "group") ?? 1) == 1 ? 1 : null,
            // An embedding table's rows are looked up; its columns are the hidden channels.
            "Gather" => 1,
            _ => null,
        };
    }

    internal static long GatherAxis(NodeProto node) => Attribute(node, "axis") ?? 0;

    internal static long? Attribute(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name)?.I;
}
