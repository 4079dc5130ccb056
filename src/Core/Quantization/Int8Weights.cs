using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Quantization;

namespace Quantize.Core.Quantization;

/// <summary>An 8-bit weight written into the model: its initializers and parameters.</summary>
/// <param name="Value">The 8-bit initializer.</param>
/// <param name="Scale">The float scale initializer (a scalar, or one per channel).</param>
/// <param name="ZeroPoint">The zero point initializer, of the weight's type.</param>
/// <param name="Axis">The channel axis, or null for per-tensor.</param>
/// <param name="Scales">The scales.</param>
/// <param name="ZeroPoints">The zero points.</param>
internal sealed record QuantizedWeight(string Value, string Scale, string ZeroPoint, int? Axis, float[] Scales, int[] ZeroPoints);

/// <summary>
/// Quantizes float weights to int8/uint8 once each (per tensor, or per channel along an axis) and adds the
/// initializers. Symmetric int8 uses -127..127 so that the integer kernels' exact paths apply.
/// </summary>
internal sealed class Int8Weights(QuantizationContext context)
{
    private readonly Dictionary<(string, int?), QuantizedWeight> _written = [];

    /// <summary>The 8-bit form of <paramref name="weight"/>, per channel along <paramref name="axis"/> (null: per tensor).</summary>
    public QuantizedWeight Get(FloatWeight weight, int? axis)
    {
        if (_written.TryGetValue((weight.Value, axis), out var done)) return done;
        var options = context.Options;
        var type = options.WeightType;
        bool symmetric = options.SymmetricWeights;
        var range = QuantizedRange.Of(type, narrow: symmetric && type == TensorElementType.Int8, reduced: options.EffectiveReduceRange);

        var (scales, zeroPoints) = ChooseParameters(weight.Values, weight.Dims, axis, range, symmetric);
        byte[] quantized = LinearQuantization.Quantize(weight.Values, weight.Dims, scales, zeroPoints, axis ?? 0, 0, type, range);

        var names = context.Names;
        string baseName = weight.Root.Name.Length > 0 ? weight.Root.Name : weight.Value;
        string valueName = names.Next(baseName + "_quantized"), scaleName = names.Next(baseName + "_scale"), zeroName = names.Next(baseName + "_zero_point");
        var dataType = type == TensorElementType.Int8 ? TensorProto.Types.DataType.Int8 : TensorProto.Types.DataType.Uint8;
        long[] parameterShape = axis is null ? [] : [weight.Dims[axis.Value]];
        byte[] zeroBytes = Array.ConvertAll(zeroPoints, z => unchecked((byte)z));
        context.Graph.Initializer.Add(OnnxBuild.Tensor(valueName, dataType, weight.Dims, quantized));
        context.Graph.Initializer.Add(OnnxBuild.Floats(scaleName, parameterShape, scales));
        context.Graph.Initializer.Add(OnnxBuild.Tensor(zeroName, dataType, parameterShape, zeroBytes));
        context.Replaced(weight);
        return _written[(weight.Value, axis)] = new QuantizedWeight(valueName, scaleName, zeroName, axis, scales, zeroPoints);
    }

    /// <summary>Scale and zero point per channel (or one pair) from each channel's min and max.</summary>
    internal static (float[] Scales, int[] ZeroPoints) ChooseParameters(float[] values, long[] dims, int? axis, QuantizedRange range, bool symmetric)
    {
        int channels = axis is null ? 1 : (int)dims[axis.Value];
        long inner = 1;
        if (axis is not null)
        {
            for (int d = axis.Value + 1; d < dims.Length; d++) inner *= dims[d];
        }
        var min = new float[channels];
        var max = new float[channels];
        for (long i = 0; i < values.LongLength; i++)
        {
            int c = axis is null ? 0 : (int)(i / inner % channels);
            float v = values[i];
            if (v < min[c]) min[c] = v;
            if (v > max[c]) max[c] = v;
        }
        var scales = new float[channels];
        var zeroPoints = new int[channels];
        for (int c = 0; c < channels; c++)
        {
            var p = QuantizationParameters.FromRange(min[c], max[c], range, symmetric);
            (scales[c], zeroPoints[c]) = (p.Scale, p.ZeroPoint);
        }
        return (scales, zeroPoints);
    }
}
