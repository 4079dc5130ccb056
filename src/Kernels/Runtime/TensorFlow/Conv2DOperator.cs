using System.Buffers;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime.Operators;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>The output size and padding of a TensorFlow 2-D window (Conv2D, pools) along one axis.</summary>
internal readonly record struct WindowAxis(int Input, int Kernel, int Stride, int Dilation, bool Same)
{
    private int Effective => (Kernel - 1) * Dilation + 1;

    /// <summary>SAME: ceil(in / stride); VALID: ceil((in - effective kernel + 1) / stride).</summary>
    public int Output => Same ? (Input + Stride - 1) / Stride : Math.Max(0, (Input - Effective + Stride) / Stride);

    /// <summary>SAME pads the total it needs, the odd element at the end.</summary>
    public int PadBefore => Same ? Math.Max((Output - 1) * Stride + Effective - Input, 0) / 2 : 0;
}

/// <summary>
/// TensorFlow's Conv2D in NHWC with an HWIO filter: each output pixel's window is laid out as one row (kernel row, kernel
/// column, channel: the filter's own order), so the convolution is one GEMM with the filter as a [kh*kw*C, O] matrix. A 1x1
/// stride-1 filter needs no copy. The filter is packed once when constant; with 8-bit weights (the translation of a
/// Dequantize of a constant: inputs 2 and 3 are the zero point and scales) it runs on <see cref="Int8Gemm.MultiplyDynamic"/>,
/// activations quantized per run.
/// </summary>
[OnnxOperator("Conv2D", 1, GraphDefTranslator.Domain)]
internal sealed class Conv2DOperator(
    int[] strides, int[] dilations, bool same, int[]? filterShape, PackedFloatMatrix? packedFloat, PackedInt8Matrix? packedInt8, float[] scales, float[] bias)
    : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        int[] strides = (context.Ints("strides") ?? [1, 1]).Select(v => (int)v).ToArray();
        int[] dilations = (context.Ints("dilations") ?? [1, 1]).Select(v => (int)v).ToArray();
        bool same = context.String("padding", "VALID") == "SAME";
        // Input 4, when present, is a constant bias added per output channel (a BiasAdd the translation folded in).
        float[] bias = context.HasInput(4) ? context.TakeConstantInput(4)?.ToArray<float>() ?? throw context.Unsupported("a bias that is not constant") : [];
        var filter = context.ConstantInput(1);
        if (filter is null || filter.Rank != 4) return new Conv2DOperator(strides, dilations, same, null, null, null, [], bias);
        filter = context.TakeConstantInput(1)!;
        int[] shape = filter.ShapeArray;
        int depth = shape[0] * shape[1] * shape[2], columns = shape[3];
        if (context.HasInput(3))
        {
            var zeroPoints = QuantizationInputs.ZeroPoints(context.ConstantInput(2), context.Label);
            var bytes = QuantizationInputs.Bytes(filter);
            var packed = DynamicQuantizeMatMul.PackWeights(context, bytes, filter.ElementType == TensorElementType.Int8, depth, columns, zeroPoints.Length == 0 ? [0] : zeroPoints);
            return new Conv2DOperator(strides, dilations, same, shape, null, packed, QuantizationInputs.Scales(context.ConstantInput(3)!, context.Label), bias);
        }
        if (filter.ElementType != TensorElementType.Float32) throw context.Unsupported($"a {filter.ElementType.DisplayName()} filter");
        return new Conv2DOperator(strides, dilations, same, shape, PackedFloatMatrix.Pack(filter.AsSpan<float>(), depth, columns), null, [], bias);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        if (x.ElementType != TensorElementType.Float32 || x.Rank != 4)
            throw new InvalidOperationException($"{call.Context.Node}: the input must be a float NHWC tensor, not {x}.");
        int[] shape = filterShape ?? call.Input(1).ShapeArray;
        var packed = packedFloat;
        if (packedInt8 is null && packed is null)
        {
            var filter = call.Input(1);
            packed = PackedFloatMatrix.Pack(filter.AsSpan<float>(), shape[0] * shape[1] * shape[2], shape[3]);
        }
        int batch = x.Shape[0], channels = x.Shape[3];
        if (channels != shape[2]) throw new InvalidOperationException($"{call.Context.Node}: the input has {channels} channels; the filter expects {shape[2]}.");
        var rows = new WindowAxis(x.Shape[1], shape[0], strides[0], dilations[0], same);
        var cols = new WindowAxis(x.Shape[2], shape[1], strides[1], dilations[1], same);
        var y = call.Output(0, TensorElementType.Float32, [batch, rows.Output, cols.Output, shape[3]]);
        int pixels = batch * rows.Output * cols.Output, depth = shape[0] * shape[1] * channels;
        bool direct = shape[0] == 1 && shape[1] == 1 && strides[0] == 1 && strides[1] == 1;
        float[]? patches = direct ? null : ArrayPool<float>.Shared.Rent(Math.Max(1, pixels * depth));
        try
        {
            ReadOnlySpan<float> a = direct ? x.AsSpan<float>() : Im2Col(x.AsSpan<float>(), batch, channels, rows, cols, shape[0], shape[1], patches!);
            if (packedInt8 is not null)
                Int8Gemm.MultiplyDynamic(a[..(pixels * depth)], pixels, packedInt8, scales, bias, y.AsSpan<float>(), call.Context.DegreeOfParallelism);
            else
                FloatGemm.Multiply(a[..(pixels * depth)], pixels, packed!, y.AsSpan<float>(), bias, call.Context.DegreeOfParallelism);
        }
        finally
        {
            if (patches is not null) ArrayPool<float>.Shared.Return(patches);
        }
    }

    /// <summary>One row per output pixel: the window's values in (kernel row, kernel column, channel) order, zeros outside the input.</summary>
    internal static ReadOnlySpan<T> Im2Col<T>(ReadOnlySpan<T> x, int batch, int channels, WindowAxis rows, WindowAxis cols, int kh, int kw, T[] patches)
    {
        int height = rows.Input, width = cols.Input;
        int depth = kh * kw * channels;
        int row = 0;
        for (int n = 0; n < batch; n++)
        {
            for (int oy = 0; oy < rows.Output; oy++)
            {
                for (int ox = 0; ox < cols.Output; ox++, row++)
                {
                    var target = patches.AsSpan(row * depth, depth);
                    int offset = 0;
                    for (int ky = 0; ky < kh; ky++)
                    {
                        int iy = oy * rows.Stride - rows.PadBefore + ky * rows.Dilation;
                        for (int kx = 0; kx < kw; kx++, offset += channels)
                        {
                            int ix = ox * cols.Stride - cols.PadBefore + kx * cols.Dilation;
                            var slot = target.Slice(offset, channels);
                            if (iy < 0 || iy >= height || ix < 0 || ix >= width) slot.Clear();
                            else x.Slice(((n * height + iy) * width + ix) * channels, channels).CopyTo(slot);
                        }
                    }
                }
            }
        }
        return patches;
    }
}
