using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;

namespace Quantize.Kernels.Runtime.Planning;

/// <summary>
/// Fuses the QDQ form of Conv, MatMul and Gemm (what ONNX Runtime's quantize_static writes) into one node computing in
/// integers, as ONNX Runtime fuses it into QLinearConv / QLinearMatMul:
/// <code>
/// DequantizeLinear(x_q) -> x;  DequantizeLinear(constant w_q) -> w;  [DequantizeLinear(constant int32 b_q) -> b, or a float b]
/// Conv | MatMul | Gemm(x, w, b) -> y  [-> Relu | Clip(constant bounds)]  [-> QuantizeLinear(y_scale, y_zero_point)]
/// </code>
/// x must be 8-bit per tensor; w 8-bit per tensor or per output channel (axis 0 for Conv and for Gemm with transB,
/// axis 1 for MatMul and Gemm without). With the QuantizeLinear (the only reader of the float result) the node
/// writes 8-bit values, so quantized activations flow between consecutive fused nodes without going through float;
/// without it (a last layer) it writes floats. The DequantizeLinear nodes stay when something else reads them.
/// A float activation with DequantizeLinear weights (weight-only quantization) is not fused: the weights' DequantizeLinear
/// has constant inputs, so the planner folds it once at load and the float kernels run.
/// </summary>
internal sealed class QdqLinearFusion : IConstantRewrite
{
    /// <summary>Attributes a fused node takes over from the Conv or Gemm it replaces.</summary>
    private static readonly HashSet<string> ConvAttributes = ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"];
    private static readonly HashSet<string> GemmAttributes = ["alpha", "beta", "transB"];

    public List<NodeProto> Apply(OnnxModel model, SessionOptions options, List<NodeProto> nodes, Dictionary<string, Tensor> constants)
    {
        if (!options.UseIntegerKernels) return nodes;
        var view = new GraphView(model, nodes);
        return QdqPatterns.Fuse(model, nodes, node =>
            node.OpType is not ("Conv" or "MatMul" or "Gemm") || !GraphView.IsDefaultDomain(node) || node.Input.Count < 2 || node.Output.Count != 1
                ? null
                : Match(view, constants, node));
    }

    private static QdqFusion? Match(GraphView view, Dictionary<string, Tensor> constants, NodeProto node)
    {
        if (QdqPatterns.Dequantize(view, constants, node.Input[0]) is not { PerTensor: true } x
            || x.ZeroPointType is not (null or TensorElementType.UInt8 or TensorElementType.Int8)) return null;
        if (QdqPatterns.Dequantize(view, constants, node.Input[1]) is not { } w || w.ZeroPointType is TensorElementType.Int32
            || !constants.TryGetValue(w.Input, out var weight) || weight.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8)) return null;

        bool transB = QdqPatterns.Int(node, "transB", 0) != 0;
        int channelAxis;
        switch (node.OpType)
        {
            case "Conv" when weight.Rank is >= 3 and <= 5: channelAxis = 0; break;
            case "MatMul" when weight.Rank == 2: channelAxis = 1; break;
            case "Gemm" when weight.Rank == 2 && QdqPatterns.Int(node, "transA", 0) == 0: channelAxis = transB ? 0 : 1; break;
            default: return null;
        }
        int channels = weight.Shape[channelAxis];
        if (w.Scales.Length != 1 && (w.Scales.Length != channels || Normalize(w.Axis, weight.Rank) != channelAxis)) return null;

        var dequantizations = new List<NodeProto> { x.Node, w.Node };
        string bias = "", biasScale = "", biasZeroPoint = "";
        if (node.OpType != "MatMul" && node.Input.Count > 2 && node.Input[2].Length > 0)
        {
            string b = node.Input[2];
            if (constants.TryGetValue(b, out var floatBias))
            {
                if (floatBias.ElementType != TensorElementType.Float32 || !BiasFits(floatBias, channels, node.OpType == "Gemm")) return null;
                bias = b;
            }
            else if (QdqPatterns.Dequantize(view, constants, b) is { } bq && constants.TryGetValue(bq.Input, out var quantizedBias)
                && quantizedBias.ElementType is TensorElementType.Int32 or TensorElementType.Int8 or TensorElementType.UInt8
                && BiasFits(quantizedBias, channels, node.OpType == "Gemm")
                && (bq.Scales.Length == 1 || (bq.Scales.Length == quantizedBias.Length && quantizedBias.Rank == 1)))
            {
                (bias, biasScale, biasZeroPoint) = (bq.Input, bq.Scale, bq.ZeroPoint);
                dequantizations.Add(bq.Node);
            }
            else
            {
                return null;
            }
        }

        var chain = new List<NodeProto> { node };
        string output = node.Output[0];
        float clipMin = float.NegativeInfinity, clipMax = float.PositiveInfinity;
        if (QdqPatterns.SoleActivation(view, constants, output) is { } activation)
        {
            chain.Add(activation.Node);
            (clipMin, clipMax, output) = (activation.Min, activation.Max, activation.Node.Output[0]);
        }
        string yScale = "", yZeroPoint = "";
        TensorElementType? outputType = null;
        if (QdqPatterns.SoleQuantize(view, constants, output) is { } quantize)
        {
            chain.Add(quantize.Node);
            (yScale, output, outputType) = (quantize.Node.Input[1], quantize.Node.Output[0], quantize.Type);
            yZeroPoint = quantize.Node.Input.Count > 2 ? quantize.Node.Input[2] : "";
        }

        var fused = new NodeProto { OpType = node.OpType == "Conv" ? "QuantizedConv" : "QuantizedMatMul", Domain = PlanBuilder.FusedDomain, Name = node.Name };
        var kept = node.OpType == "Conv" ? ConvAttributes : node.OpType == "Gemm" ? GemmAttributes : [];
        fused.Attribute.AddRange(node.Attribute.Where(a => kept.Contains(a.Name)).Select(a => a.Clone()));
        if (node.OpType == "Gemm") fused.Attribute.Add(new AttributeProto { Name = "gemm", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
        if (!float.IsNegativeInfinity(clipMin)) fused.Attribute.Add(new AttributeProto { Name = "clip_min", Type = AttributeProto.Types.AttributeType.Float, F = clipMin });
        if (!float.IsPositiveInfinity(clipMax)) fused.Attribute.Add(new AttributeProto { Name = "clip_max", Type = AttributeProto.Types.AttributeType.Float, F = clipMax });
        if (outputType is { } type && yZeroPoint.Length == 0)
            fused.Attribute.Add(new AttributeProto { Name = "output_dtype", Type = AttributeProto.Types.AttributeType.Int, I = OnnxElementTypes.ToOnnx(type) });
        fused.Input.AddRange([x.Input, x.Scale, x.ZeroPoint, w.Input, w.Scale, w.ZeroPoint, bias, biasScale, biasZeroPoint, yScale, yZeroPoint]);
        fused.Output.Add(output);
        return new QdqFusion(fused, chain[^1], chain, dequantizations);
    }

    private static long Normalize(long axis, int rank) => axis < 0 ? axis + rank : axis;

    /// <summary>A bias of one value per output channel (Gemm also takes a scalar or [1, N]).</summary>
    private static bool BiasFits(Tensor bias, int channels, bool gemm) =>
        (bias.Rank == 1 && bias.Shape[0] == channels)
        || (gemm && (bias.Length == 1 || (bias.Rank == 2 && bias.Shape[0] == 1 && bias.Shape[1] == channels)));
}
