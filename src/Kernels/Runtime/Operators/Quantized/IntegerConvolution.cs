using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The exact integer convolution behind ConvInteger and QLinearConv: <c>sum (x - zx)(w - zw[m])</c> in int32, lowered to
/// <see cref="Int8Gemm"/> as the QDQ convolution is (<see cref="ByteConvolutionLowering.Run"/>: NHWC image, patch rows whose
/// padded taps hold x's zero point, weights packed once at load, or per run when they are not constant).
/// </summary>
internal sealed class IntegerConvolution(WindowAttributes window, int group, PackedInt8Matrix[]? packed)
{
    public static IntegerConvolution Create(OperatorBuildContext context, int weightIndex, int weightZeroPointIndex, int inputZeroPointIndex)
    {
        var window = WindowAttributes.Read(context);
        int group = (int)context.Int("group", 1);
        if (group <= 0) throw context.Unsupported($"group {group}");
        PackedInt8Matrix[]? packed = null;
        if (context.ConstantInput(weightIndex) is { } w && w.Rank >= 3 && w.Shape[0] % group == 0
            && (!context.HasInput(weightZeroPointIndex) || context.ConstantInput(weightZeroPointIndex) is not null))
        {
            // x's zero point picks the weights' layout for AVX2 (exact either way): one that varies per run (ConvInteger after
            // DynamicQuantizeLinear) is usually 0, for a ReLU's output.
            bool small = context.ConstantInput(inputZeroPointIndex) is not { } zx
                || ByteConvolutionLowering.SmallActivations(QuantizationInputs.ZeroPoints(zx, context.Label) is [var z, ..] ? z : 0, zx.ElementType);
            packed = Pack(w, QuantizationInputs.ZeroPoints(context.ConstantInput(weightZeroPointIndex), context.Label), group, small);
        }
        return new IntegerConvolution(window, group, packed);
    }

    /// <summary>
    /// Computes the int32 convolution into the node's output 0 (ConvInteger) or, when <paramref name="asOutput"/> is false,
    /// into a tensor of its own (QLinearConv requantizes it), and returns that tensor.
    /// </summary>
    public Tensor Run(OperatorCall call, Tensor x, Tensor w, Tensor? zeroPointX, Tensor? zeroPointW, bool asOutput)
    {
        string node = call.Context.Node;
        if (x.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8) || w.ElementType is not (TensorElementType.UInt8 or TensorElementType.Int8))
            throw new NotSupportedException($"{node}: integer convolution of {x.ElementType.DisplayName()} by {w.ElementType.DisplayName()} is not supported.");
        if (x.Rank < 3 || w.Rank != x.Rank) throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(w.Shape)} do not match.");
        int batch = x.Shape[0], channels = x.Shape[1], outputs = w.Shape[0], channelsPerGroup = w.Shape[1];
        if (channels != channelsPerGroup * group || outputs % group != 0)
            throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(w.Shape)} do not fit {group} groups.");
        var g = window.Resolve(x.Shape[2..], window.KernelShape ?? w.ShapeArray[2..], node);
        if (g.KernelSize != Tensor.CountElements(w.Shape[2..]))
            throw new InvalidOperationException($"{node}: kernel_shape {Tensor.Format(window.KernelShape ?? [])} differs from the weights' {Tensor.Format(w.Shape[2..])}.");
        int zx = QuantizationInputs.ZeroPoints(zeroPointX, node) is [var z, ..] ? z : 0;
        var weights = packed ?? Pack(w, QuantizationInputs.ZeroPoints(zeroPointW, node), group, small: true);
        int outputsPerGroup = outputs / group, pixels = g.OutputSize;
        int[] shape = g.OutputShape(batch, outputs);
        var result = asOutput ? call.Output(0, TensorElementType.Int32, shape) : Tensor.Create(new int[Tensor.CountElements(shape)], shape);
        ByteConvolutionLowering.Run(g, x, channels, group, outputs, zx, weights, call.Context.DegreeOfParallelism, (sums, rows, n, gi, first) =>
            ConvolutionLowering.Transpose<int>(sums, rows, outputsPerGroup, result.AsSpan<int>()[((n * outputs + gi * outputsPerGroup) * pixels + first)..], pixels));
        return result;
    }

    /// <summary>Per group, the weights [Mg, Cg, taps] as the GEMM's B in the patch rows' tap-major order, with per-channel zero points.</summary>
    private static PackedInt8Matrix[] Pack(Tensor w, int[] zeroPoints, int group, bool small)
    {
        int outputs = w.Shape[0], outputsPerGroup = outputs / group, taps = Tensor.CountElements(w.Shape[2..]);
        var bytes = QuantizationInputs.Bytes(w);
        bool signed = w.ElementType == TensorElementType.Int8;
        var result = new PackedInt8Matrix[group];
        for (int g = 0; g < group; g++)
            result[g] = ByteConvolutionLowering.PackWeights(bytes, signed, g, outputsPerGroup, w.Shape[1], taps, zeroPoints, small);
        return result;
    }
}

/// <summary>ConvInteger: the int32 convolution of (x - x_zero_point) and (w - w_zero_point).</summary>
[OnnxOperator("ConvInteger", 10)]
internal sealed class ConvIntegerOperator(IntegerConvolution convolution) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new ConvIntegerOperator(IntegerConvolution.Create(context, 1, 3, 2));

    public override void Run(OperatorCall call)
    {
        convolution.Run(call, call.Input(0), call.Input(1), call.OptionalInput(2), call.OptionalInput(3), asOutput: true);
    }
}

/// <summary>
/// QLinearConv: the integer convolution plus the int32 bias, then ONNX's requantization,
/// <c>round(clip(R x (sx x sw[m] / sy) + zy))</c> with the scale product in float32 and the rest in float64.
/// </summary>
[OnnxOperator("QLinearConv", 10)]
internal sealed class QLinearConvOperator(IntegerConvolution convolution) : Operator
{
    public static Operator Create(OperatorBuildContext context) => new QLinearConvOperator(IntegerConvolution.Create(context, 3, 5, 2));

    public override void Run(OperatorCall call)
    {
        string node = call.Context.Node;
        var x = call.Input(0);
        var sums = convolution.Run(call, x, call.Input(3), call.OptionalInput(2), call.OptionalInput(5), asOutput: false);
        int[] shape = sums.ShapeArray;
        var accumulators = sums.AsSpan<int>();
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
        for (int plane = 0; plane < accumulators.Length / Math.Max(1, pixels); plane++)
        {
            int m = plane % outputs, offset = plane * pixels;
            double scale = sx * sw[sw.Length == 1 ? 0 : m] / sy; // float32 arithmetic, as the reference
            int b = bias is null ? 0 : bias[m];
            for (int i = offset; i < offset + pixels; i++)
                output[i] = (byte)(int)Math.Round(Math.Clamp((accumulators[i] + b) * scale + zy, min, max), MidpointRounding.ToEven);
        }
    }
}
