using Quantize.Kernels.Models;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>8-bit constant weights behind a TensorFlow Dequantize, in the form the integer kernels take: values, zero point, scales.</summary>
/// <param name="Type">UInt8 (MIN_FIRST) or Int8 (SCALED).</param>
/// <param name="Values">The stored 8-bit values.</param>
/// <param name="Shape">The weight's shape.</param>
/// <param name="ZeroPoint">The uint8 zero point (MIN_FIRST); 0 for int8.</param>
/// <param name="Scales">One scale, or one per slice along <paramref name="Axis"/>.</param>
/// <param name="Axis">The per-channel axis, or -1.</param>
internal sealed record QuantizedWeight(TensorElementType Type, byte[] Values, long[] Shape, byte ZeroPoint, float[] Scales, int Axis)
{
    public bool PerChannel => Scales.Length > 1 || Axis >= 0;

    public int Rows => Shape.Length == 2 ? (int)Shape[0] : 0;

    public int Columns => Shape.Length == 2 ? (int)Shape[1] : 0;
}

internal sealed partial class GraphDefTranslator
{
    /// <summary>
    /// The weight behind <paramref name="value"/> when it is <c>Dequantize(constant, constant min, constant max)</c> in MIN_FIRST
    /// (quint8, per tensor: scale (max - min) / 255 and zero point -round(min / scale), exactly TensorFlow's dequantized values up to
    /// float rounding) or SCALED (qint8, per tensor or per channel) mode; null otherwise, and the graph then runs as written.
    /// </summary>
    private QuantizedWeight? QuantizedWeight(string value)
    {
        var reference = Models.TensorFlow.GraphDefInput.Parse(value);
        for (int depth = 0; depth < 16 && reference.Output == 0 && !_feeds.Contains(reference.Node); depth++)
        {
            if (!_nodes.TryGetValue(reference.Node, out var node)) return null;
            if (node.Op is "Identity" && node.Input.Count > 0)
            {
                reference = Models.TensorFlow.GraphDefInput.Parse(node.Input[0]);
                continue;
            }
            if (node.Op != "Dequantize" || InputCount(node) != 3) return null;
            var q = ConstantValue(In(node, 0));
            var min = ConstantValue(In(node, 1));
            var max = ConstantValue(In(node, 2));
            if (q is null || min is not { ElementType: TensorElementType.Float32 } || max is not { ElementType: TensorElementType.Float32 }) return null;
            string mode = String(node, "mode", "MIN_COMBINED");
            var mins = min.ToArray<float>();
            var maxs = max.ToArray<float>();
            if (mode == "MIN_FIRST" && q.ElementType == TensorElementType.QUInt8 && mins.Length == 1 && maxs.Length == 1)
            {
                var (step, offset) = TensorFlowQuantization.MinFirstStep(mins[0], maxs[0]);
                if (step <= 0 || !float.IsFinite(step)) return null;
                float zeroPoint = -MathF.Round(offset / step);
                if (zeroPoint is < 0 or > 255) return null;
                return new QuantizedWeight(TensorElementType.UInt8, q.Bytes.ToArray(), q.Shape.ToArray(), (byte)zeroPoint, [step], -1);
            }
            if (mode == "SCALED" && q.ElementType == TensorElementType.QInt8 && mins.Length == maxs.Length)
            {
                bool narrow = Bool(node, "narrow_range");
                var scales = mins.Zip(maxs, (lo, hi) => TensorFlowQuantization.ScaledStep(lo, hi, narrow)).ToArray();
                int axis = (int)Int(node, "axis", -1);
                if (scales.Length > 1 && (axis < 0 || axis >= q.Shape.Length || q.Shape[axis] != scales.Length)) return null;
                return new QuantizedWeight(TensorElementType.Int8, q.Bytes.ToArray(), q.Shape.ToArray(), 0, scales, scales.Length > 1 ? axis : -1);
            }
            return null;
        }
        return null;
    }
}
