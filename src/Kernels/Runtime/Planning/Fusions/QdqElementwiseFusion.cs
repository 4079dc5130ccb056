using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Runs MaxPool and Add between DequantizeLinear and QuantizeLinear on the 8-bit values (per-tensor parameters, constant):
/// <list type="bullet">
/// <item><c>DequantizeLinear(x) -> MaxPool -> QuantizeLinear</c> becomes <c>QuantizedMaxPool(x)</c>: the maximum of the 8-bit
/// values, then a 256-entry table <c>Q(DQ(v))</c> (the identity when both have the same parameters). Exact: both maps are
/// monotonic, so they commute with the maximum.</item>
/// <item><c>DequantizeLinear(a) + DequantizeLinear(b) [-> Relu | Clip] -> QuantizeLinear</c> becomes <c>QuantizedAdd</c>, which
/// computes the same float32 steps per element in one pass, without the float tensors in between.</item>
/// </list>
/// </summary>
internal sealed class QdqElementwiseFusion : IConstantRewrite
{
    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes, Dictionary<string, Tensor> constants)
    {
        if (!options.UseIntegerKernels) return nodes;
        var view = new GraphView(model, nodes);
        return QdqPatterns.Fuse(model, nodes, node => !GraphView.IsDefaultDomain(node) || node.Output.Count == 0 ? null : node.OpType switch
        {
            "MaxPool" => MaxPool(view, constants, node),
            "Add" => Add(view, constants, node),
            _ => null,
        });
    }

    private static QdqFusion? MaxPool(GraphView view, Dictionary<string, Tensor> constants, NodeProto pool)
    {
        if (pool.Output.Count(o => o.Length > 0) != 1 || pool.Output.Count > 1 && pool.Output[1].Length > 0) return null;
        if (Activation(view, constants, pool.Input[0]) is not { } x) return null;
        if (QdqPatterns.SoleQuantize(view, constants, pool.Output[0]) is not { } quantize || quantize.Scale <= 0) return null;
        var fused = new NodeProto { OpType = "QuantizedMaxPool", Domain = PlanBuilder.FusedDomain, Name = pool.Name };
        fused.Attribute.AddRange(pool.Attribute.Select(a => a.Clone()));
        fused.Input.AddRange([x.Input, x.Scale, x.ZeroPoint, quantize.Node.Input[1], quantize.Node.Input.Count > 2 ? quantize.Node.Input[2] : ""]);
        OutputType(fused, quantize.Node, quantize.Type);
        fused.Output.Add(quantize.Node.Output[0]);
        return new QdqFusion(fused, quantize.Node, [pool, quantize.Node], [x.Node]);
    }

    private static QdqFusion? Add(GraphView view, Dictionary<string, Tensor> constants, NodeProto add)
    {
        if (add.Input.Count != 2 || add.Output.Count != 1) return null;
        if (Activation(view, constants, add.Input[0]) is not { } a || Activation(view, constants, add.Input[1]) is not { } b) return null;
        var chain = new List<NodeProto> { add };
        string output = add.Output[0];
        float clipMin = float.NegativeInfinity, clipMax = float.PositiveInfinity;
        if (QdqPatterns.SoleActivation(view, constants, output) is { } activation)
        {
            chain.Add(activation.Node);
            (clipMin, clipMax, output) = (activation.Min, activation.Max, activation.Node.Output[0]);
        }
        if (QdqPatterns.SoleQuantize(view, constants, output) is not { } quantize) return null;
        chain.Add(quantize.Node);
        var fused = new NodeProto { OpType = "QuantizedAdd", Domain = PlanBuilder.FusedDomain, Name = add.Name };
        fused.Input.AddRange([a.Input, a.Scale, a.ZeroPoint, b.Input, b.Scale, b.ZeroPoint, quantize.Node.Input[1], quantize.Node.Input.Count > 2 ? quantize.Node.Input[2] : ""]);
        if (chain.Count == 3)
        {
            // The activation as it was written: Relu is max(v, 0); Clip is min(max(v, lo), hi).
            fused.Attribute.Add(new AttributeProto { Name = "clip_min", Type = AttributeProto.Types.AttributeType.Float, F = clipMin });
            if (!float.IsPositiveInfinity(clipMax)) fused.Attribute.Add(new AttributeProto { Name = "clip_max", Type = AttributeProto.Types.AttributeType.Float, F = clipMax });
        }
        OutputType(fused, quantize.Node, quantize.Type);
        fused.Output.Add(quantize.Node.Output[0]);
        return new QdqFusion(fused, quantize.Node, chain, [a.Node, b.Node]);
    }

    /// <summary>A per-tensor 8-bit DequantizeLinear with a positive scale (so that it is increasing).</summary>
    private static Dequantization? Activation(GraphView view, Dictionary<string, Tensor> constants, string value) =>
        QdqPatterns.Dequantize(view, constants, value) is { PerTensor: true, ZeroPointType: null or TensorElementType.UInt8 or TensorElementType.Int8 } x && x.Scales[0] > 0
            ? x : null;

    private static void OutputType(NodeProto fused, NodeProto quantize, TensorElementType type)
    {
        if (quantize.Input.Count > 2 && quantize.Input[2].Length > 0) return;
        fused.Attribute.Add(new AttributeProto { Name = "output_dtype", Type = AttributeProto.Types.AttributeType.Int, I = OnnxElementTypes.ToOnnx(type) });
    }
}
