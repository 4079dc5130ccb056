using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The exact integer convolution behind ConvInteger and QLinearConv: <c>sum (x - zx)(w - zw[m])</c> in int32.
/// Per image and group, the patch matrix is built in bytes with padded taps set to x's zero point (so they add
/// nothing) and multiplied on <see cref="Int8Gemm"/> against the weights packed once at load (or per run when
/// they are not constant), then written back channel-major.
/// </summary>
internal sealed class IntegerConvolution(WindowAttributes window, int group, PackedInt8Matrix[]? packed)
{
    public static IntegerConvolution Create(OperatorBuildContext context, int weightIndex, int weightZeroPointIndex)
    {
        var window = WindowAttributes.Read(context);
        int group = (int)context.Int("group", 1);
        if (group <= 0) throw context.Unsupported($"group {group}");
        PackedInt8Matrix[]? packed = null;
        if (context.ConstantInput(weightIndex) is { } w && (!context.HasInput(weightZeroPointIndex) || context.ConstantInput(weightZeroPointIndex) is not null))
            packed = Pack(w, QuantizationInputs.ZeroPoints(context.ConstantInput(weightZeroPointIndex), context.Label), group);
        return new IntegerConvolution(window, group, packed);
    }

    /// <summary>Computes the int32 convolution; returns the output shape.</summary>
    public int[] Run(OperatorCall call, Tensor x, Tensor w, Tensor? zeroPointX, Tensor? zeroPointW, out int[] accumulators)
    {
        string node = call.Context.Node;
        if (x.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8) || w.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8))
            throw new NotSupportedException($"{node}: integer convolution of {x.ElementType.DisplayName()} by {w.ElementType.DisplayName()} is not supported.");
        if (x.Rank < 3 || w.Rank != x.Rank) throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(w.Shape)} do not match.");
        int batch = x.Shape[0], channels = x.Shape[1], outputs = w.Shape[0], channelsPerGroup = w.Shape[1];
        if (channels != channelsPerGroup * group || outputs % group != 0)
            throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(w.Shape)} do not fit {group} groups.");
        var g = window.Resolve(x.Shape[2..], window.KernelShape ?? w.ShapeArray[2..], node);
        int zx = QuantizationInputs.ZeroPoints(zeroPointX, node) is [var z, ..] ? z : 0;
        var weights = packed ?? Pack(w, QuantizationInputs.ZeroPoints(zeroPointW, node), group);
        int outputsPerGroup = outputs / group, depth = channelsPerGroup * g.KernelSize, pixels = g.OutputSize;
        bool signedX = x.ElementType == TensorElementType.Int8;
        var source = QuantizationInputs.Bytes(x);
        accumulators = new int[batch * outputs * pixels];
        var patches = new byte[pixels * depth];
        var product = new int[pixels * outputsPerGroup];
        for (int n = 0; n < batch; n++)
        {
            for (int gi = 0; gi < group; gi++)
            {
                BuildPatches(g, source.Slice((n * channels + gi * channelsPerGroup) * g.InputSize, channelsPerGroup * g.InputSize), channelsPerGroup, (byte)zx, patches);
                Int8Gemm.MultiplyInt32(patches, pixels, zx, signedX, weights[gi], product, call.Context.DegreeOfParallelism);
                int baseOut = (n * outputs + gi * outputsPerGroup) * pixels;
                for (int p = 0; p < pixels; p++)
                {
                    for (int m = 0; m < outputsPerGroup; m++) accumulators[baseOut + m * pixels + p] = product[p * outputsPerGroup + m];
                }
            }
        }
        return g.OutputShape(batch, outputs);
    }

    /// <summary>Row p: for each input channel and kernel tap, x under the tap, or x's zero point in the padding.</summary>
    private static void BuildPatches(WindowGeometry g, ReadOnlySpan<byte> image, int channels, byte padding, Span<byte> patches)
    {
        int inD = g.Input[0], inH = g.Input[1], inW = g.Input[2], outH = g.Output[1], outW = g.Output[2];
        int taps = g.KernelSize, depth = channels * taps;
        for (int p = 0; p < g.OutputSize; p++)
        {
            int ow = p % outW, oh = p / outW % outH, od = p / (outW * outH);
            var row = patches.Slice(p * depth, depth);
            int t = 0;
            for (int c = 0; c < channels; c++)
            {
                for (int kd = 0; kd < g.Kernel[0]; kd++)
                {
                    int id = od * g.Stride[0] - g.PadBegin[0] + kd * g.Dilation[0];
                    for (int kh = 0; kh < g.Kernel[1]; kh++)
                    {
                        int ih = oh * g.Stride[1] - g.PadBegin[1] + kh * g.Dilation[1];
                        for (int kw = 0; kw < g.Kernel[2]; kw++, t++)
                        {
                            int iw = ow * g.Stride[2] - g.PadBegin[2] + kw * g.Dilation[2];
                            bool inside = (uint)id < (uint)inD && (uint)ih < (uint)inH && (uint)iw < (uint)inW;
                            row[t] = inside ? image[((c * inD + id) * inH + ih) * inW + iw] : padding;
                        }
                    }
                }
            }
        }
    }

    /// <summary>Per group, the weights [Mg, Cg x taps] as the GEMM's B (K x Mg, given transposed), with per-channel zero points.</summary>
    private static PackedInt8Matrix[] Pack(Tensor w, int[] zeroPoints, int group)
    {
        int outputs = w.Shape[0], outputsPerGroup = outputs / group, depth = w.Length / outputs;
        var bytes = QuantizationInputs.Bytes(w);
        var result = new PackedInt8Matrix[group];
        for (int g = 0; g < group; g++)
        {
            var slice = bytes.Slice(g * outputsPerGroup * depth, outputsPerGroup * depth);
            int[] zps = zeroPoints.Length switch
            {
                0 => [0],
                1 => [zeroPoints[0]],
                _ => zeroPoints.AsSpan(g * outputsPerGroup, outputsPerGroup).ToArray(),
            };
            result[g] = w.ElementType == TensorElementType.Int8
                ? PackedInt8Matrix.Pack(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(slice), depth, outputsPerGroup, zps, transposed: true)
                : PackedInt8Matrix.Pack(slice, depth, outputsPerGroup, zps, transposed: true);
        }
        return result;
    }
}

/// <summary>ConvInteger: the int32 convolution of (x - x_zero_point) and (w - w_zero_point).</summary>
[OnnxOperator("ConvInteger", 10)]
internal sealed class ConvIntegerOperator(IntegerConvolution convolution) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new ConvIntegerOperator(IntegerConvolution.Create(context, 1, 3));

    public override void Run(OperatorCall call)
    {
        var shape = convolution.Run(call, call.Input(0), call.Input(1), call.OptionalInput(2), call.OptionalInput(3), out var accumulators);
        accumulators.CopyTo(call.Output(0, TensorElementType.Int32, shape).AsSpan<int>());
    }
}

/// <summary>
/// QLinearConv: the integer convolution plus the int32 bias, then ONNX's requantization,
/// <c>round(clip(R x (sx x sw[m] / sy) + zy))</c> with the scale product in float32 and the rest in float64.
/// </summary>
[OnnxOperator("QLinearConv", 10)]
internal sealed class QLinearConvOperator(IntegerConvolution convolution) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new QLinearConvOperator(IntegerConvolution.Create(context, 3, 5));

    public override void Run(OperatorCall call)
    {
        string node = call.Context.Node;
        var x = call.Input(0);
        var shape = convolution.Run(call, x, call.Input(3), call.OptionalInput(2), call.OptionalInput(5), out var accumulators);
        float sx = QuantizationInputs.Scales(call.Input(1), node)[0];
        float[] sw = QuantizationInputs.Scales(call.Input(4), node);
        float sy = QuantizationInputs.Scales(call.Input(6), node)[0];
        var zeroPointY = call.OptionalInput(7);
        int zy = QuantizationInputs.ZeroPoints(zeroPointY, node) is [var z, ..] ? z : 0;
        var bias = call.OptionalInput(8)?.ToArray<int>();
        var outputType = zeroPointY?.ElementType ?? x.ElementType;
        var (min, max) = outputType == TensorElementType.Int8 ? (-128, 127) : (0, 255);
        int outputs = shape[1], pixels = accumulators.Length / (shape[0] * outputs);
        var output = QuantizationInputs.Bytes(call.Output(0, outputType, shape));
        for (int i = 0; i < accumulators.Length; i++)
        {
            int m = i / pixels % outputs;
            double scale = sx * sw[sw.Length == 1 ? 0 : m] / sy; // float32 arithmetic, as the reference
            double value = (accumulators[i] + (bias is null ? 0 : bias[m])) * scale + zy;
            output[i] = (byte)(int)Math.Round(Math.Clamp(value, min, max), MidpointRounding.ToEven);
        }
    }
}
