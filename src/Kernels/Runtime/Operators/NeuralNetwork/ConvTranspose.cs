using System.Buffers;
using System.Runtime.CompilerServices;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// ConvTranspose (1-D to 3-D, groups, dilations, strides, pads, output_padding, output_shape, auto_pad): each input
/// pixel scatters <c>X x W</c> over its window of the output. float32 runs as a <see cref="FloatGemm"/> per group
/// (input pixels x channels times W as [Cg, Mg x taps], packed once at load when constant) and a col2im scatter-add.
/// </summary>
[OnnxOperator("ConvTranspose", 1)]
internal sealed class ConvTranspose(WindowAttributes window, int group, int[]? outputPadding, int[]? outputShape, PackedFloatMatrix[]? packedWeights) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        if (window.CeilMode) throw context.Unsupported("ceil_mode on ConvTranspose");
        long group = context.Int("group", 1);
        if (group <= 0) throw context.Unsupported($"group {group}");
        int[]? outputPadding = context.Ints("output_padding") is { Length: > 0 } op ? op.Select(v => checked((int)v)).ToArray() : null;
        int[]? outputShape = context.Ints("output_shape") is { Length: > 0 } os ? os.Select(v => checked((int)v)).ToArray() : null;
        if (outputPadding is not null && outputPadding.Any(v => v < 0)) throw context.Unsupported("negative output_padding");
        PackedFloatMatrix[]? packed = null;
        if (context.ConstantInput(1) is { } w)
        {
            int spatial = w.Rank - 2;
            if (spatial is < 1 or > WindowAttributes.MaxSpatialRank)
                throw context.Unsupported($"weights of shape {Tensor.Format(w.Shape)} (1 to {WindowAttributes.MaxSpatialRank} spatial axes are supported)");
            if (w.Shape[0] % group != 0) throw context.Unsupported($"{w.Shape[0]} input channels do not split into {group} groups");
            if (w.ElementType == TensorElementType.Float32)
                packed = PackWeights(w.AsSpan<float>(), (int)group, w.Shape[0] / (int)group, w.Length / w.Shape[0]);
        }
        return new ConvTranspose(window, (int)group, outputPadding, outputShape, packed);
    }

    /// <summary>Group g's weights W[g x Cg .. (g + 1) x Cg] are already a row-major [Cg, Mg x taps] matrix: the GEMM's B.</summary>
    private static PackedFloatMatrix[] PackWeights(ReadOnlySpan<float> w, int group, int channelsPerGroup, int columns)
    {
        var packed = new PackedFloatMatrix[group];
        for (int g = 0; g < group; g++)
            packed[g] = PackedFloatMatrix.Pack(w.Slice(g * channelsPerGroup * columns, channelsPerGroup * columns), channelsPerGroup, columns);
        return packed;
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: RunFloat(call, x, call.Input(1), call.OptionalInput(2)); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: ConvTranspose of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    /// <summary>Pads and output size as ONNX defines them: explicit pads, or SAME pads derived from output_shape (default: input x stride).</summary>
    private WindowGeometry Geometry(ReadOnlySpan<int> input, ReadOnlySpan<int> kernel, string node)
    {
        int rank = input.Length;
        if (rank is 0 or > WindowAttributes.MaxSpatialRank || kernel.Length != rank)
            throw new InvalidOperationException($"{node}: {rank} spatial axes with a kernel of {kernel.Length} (1 to {WindowAttributes.MaxSpatialRank} are supported).");
        int[]? requested = outputShape is null ? null : outputShape.Length == rank + 2 ? outputShape[2..] : outputShape;
        if (requested is not null && requested.Length != rank)
            throw new InvalidOperationException($"{node}: output_shape {Tensor.Format(outputShape)} for {rank} spatial axes.");
        var g = WindowGeometry.Identity(rank);
        bool same = window.Pads is null && window.AutoPad is "SAME_UPPER" or "SAME_LOWER";
        int lead = WindowAttributes.MaxSpatialRank - rank;
        for (int i = 0; i < rank; i++)
        {
            int a = lead + i, s = window.Strides?[i] ?? 1, d = window.Dilations?[i] ?? 1, padding = outputPadding?[i] ?? 0;
            int full = s * (input[i] - 1) + padding + (kernel[i] - 1) * d + 1;
            int begin, end, output;
            if (same)
            {
                output = requested?[i] ?? input[i] * s;
                int total = full - output;
                int half = (int)Math.Floor(total / 2.0);
                (begin, end) = window.AutoPad == "SAME_UPPER" ? (half, total - half) : (total - half, half);
            }
            else
            {
                begin = window.AutoPad == "NOTSET" ? window.Pads?[i] ?? 0 : 0;
                end = window.AutoPad == "NOTSET" ? window.Pads?[i + rank] ?? 0 : 0;
                output = requested?[i] ?? full - begin - end;
            }
            if (output <= 0) throw new InvalidOperationException($"{node}: output size {output} on spatial axis {i}.");
            (g.Input[a], g.Kernel[a], g.Stride[a], g.Dilation[a], g.PadBegin[a], g.PadEnd[a], g.Output[a]) = (input[i], kernel[i], s, d, begin, end, output);
        }
        return g;
    }

    private void RunFloat(OperatorCall call, Tensor x, Tensor w, Tensor? b)
    {
        string node = call.Context.Node;
        if (x.Rank < 3 || w.Rank != x.Rank)
            throw new InvalidOperationException($"{node}: ConvTranspose of input {Tensor.Format(x.Shape)} with weights {Tensor.Format(w.Shape)}: ranks differ or no spatial axes.");
        int batch = x.Shape[0], channels = x.Shape[1], outputsPerGroup = w.Shape[1], outputs = outputsPerGroup * group;
        if (w.Shape[0] != channels || channels % group != 0)
            throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(w.Shape)} do not fit {group} groups.");
        if (b is not null && b.Length != outputs)
            throw new InvalidOperationException($"{node}: bias of {b.Length} values for {outputs} output channels.");
        var g = Geometry(x.Shape[2..], window.KernelShape ?? w.ShapeArray[2..], node);
        if (g.KernelSize * outputsPerGroup * channels != w.Length)
            throw new InvalidOperationException($"{node}: kernel_shape does not match weights of shape {Tensor.Format(w.Shape)}.");
        var y = call.Output(0, TensorElementType.Float32, g.OutputShape(batch, outputs));
        var ys = y.AsSpan<float>();
        int outSize = g.OutputSize, inSize = g.InputSize, channelsPerGroup = channels / group, columns = outputsPerGroup * g.KernelSize;
        if (b is null) ys.Clear();
        else
        {
            var bias = b.AsSpan<float>();
            for (int plane = 0; plane < batch * outputs; plane++) ys.Slice(plane * outSize, outSize).Fill(bias[plane % outputs]);
        }
        var packed = packedWeights ?? PackWeights(w.AsSpan<float>(), group, channelsPerGroup, columns);

        // Bounded slices of input pixels keep the column buffer small; slices run in order since their windows overlap.
        int rowsPerChunk = Math.Max(6, Math.Min(inSize, (1 << 20) / Math.Max(1, columns)));
        float[] a = ArrayPool<float>.Shared.Rent(Math.Min(inSize, rowsPerChunk) * channelsPerGroup);
        float[] cols = ArrayPool<float>.Shared.Rent(Math.Min(inSize, rowsPerChunk) * columns);
        try
        {
            var xs = x.AsSpan<float>();
            for (int n = 0; n < batch; n++)
            {
                for (int gi = 0; gi < group; gi++)
                {
                    var source = xs.Slice((n * channels + gi * channelsPerGroup) * inSize, channelsPerGroup * inSize);
                    var target = ys.Slice((n * outputs + gi * outputsPerGroup) * outSize, outputsPerGroup * outSize);
                    for (int first = 0; first < inSize; first += rowsPerChunk)
                    {
                        int rows = Math.Min(rowsPerChunk, inSize - first);
                        // A = this slice of pixels, channels-last: [rows, Cg].
                        for (int c = 0; c < channelsPerGroup; c++)
                        {
                            var plane = source.Slice(c * inSize + first, rows);
                            for (int r = 0; r < rows; r++) a[r * channelsPerGroup + c] = plane[r];
                        }
                        FloatGemm.Multiply(a.AsSpan(0, rows * channelsPerGroup), rows, packed[gi], cols, default, call.Context.DegreeOfParallelism);
                        Scatter(g, cols, first, rows, outputsPerGroup, target);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(a);
            ArrayPool<float>.Shared.Return(cols);
        }
    }

    /// <summary>col2im: adds row r's [Mg, taps] values to the output window of input pixel first + r.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scatter(WindowGeometry g, ReadOnlySpan<float> cols, int first, int rows, int outputsPerGroup, Span<float> y)
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        int taps = g.KernelSize, outSize = g.OutputSize;
        for (int r = 0; r < rows; r++)
        {
            int p = first + r;
            int iw = p % inW, ih = p / inW % inH, id = p / (inW * inH);
            int d0 = id * g.Stride[0] - g.PadBegin[0], h0 = ih * g.Stride[1] - g.PadBegin[1], w0 = iw * g.Stride[2] - g.PadBegin[2];
            for (int m = 0; m < outputsPerGroup; m++)
            {
                var values = cols.Slice((r * outputsPerGroup + m) * taps, taps);
                var plane = y.Slice(m * outSize, outSize);
                int t = 0;
                for (int kd = 0; kd < g.Kernel[0]; kd++)
                {
                    int od = d0 + kd * g.Dilation[0];
                    for (int kh = 0; kh < g.Kernel[1]; kh++)
                    {
                        int oh = h0 + kh * g.Dilation[1];
                        bool inside = (uint)od < (uint)outD && (uint)oh < (uint)outH;
                        int line = (od * outH + oh) * outW;
                        for (int kw = 0; kw < g.Kernel[2]; kw++, t++)
                        {
                            int ow = w0 + kw * g.Dilation[2];
                            if (inside && (uint)ow < (uint)outW) plane[line + ow] += values[t];
                        }
                    }
                }
            }
        }
    }
}
