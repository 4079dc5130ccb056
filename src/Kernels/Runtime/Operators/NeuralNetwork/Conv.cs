using System.Buffers;
using System.Runtime.CompilerServices;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Conv (1-D to 3-D, groups, dilations, strides, pads, auto_pad): <c>Y[n, m] = B[m] + sum over the window of X x W</c>.
/// float32 lowers to <see cref="FloatGemm"/> per group (patches x packed weights, the bias fused); constant
/// weights are packed once at load. Depthwise convolutions (one input channel per group) run directly.
/// </summary>
[OnnxOperator("Conv", 1)]
[OnnxOperator("Conv", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class Conv(WindowAttributes window, int group, PackedFloatMatrix[]? packedWeights, float[]? constantBias, PackedFloatRows? weightRows, int[]? takenWeightShape = null,
    WinogradConvolution? winograd = null) : Operator
{
    /// <summary>Relu applied to the output as it is written (<see cref="Planning.ConvReluFusion"/>): <c>activation = "Relu"</c> on the fused node.</summary>
    private bool _relu;

    public static Operator Create(OperatorBuildContext context)
    {
        var conv = Build(context);
        conv._relu = context.String("activation", "") == "Relu";
        return conv;
    }

    private static Conv Build(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        long group = context.Int("group", 1);
        if (group <= 0) throw context.Unsupported($"group {group}");
        PackedFloatMatrix[]? packed = null;
        if (context.ConstantInput(1) is { } w)
        {
            int spatial = w.Rank - 2;
            if (spatial is < 1 or > WindowAttributes.MaxSpatialRank)
                throw context.Unsupported($"weights of shape {Tensor.Format(w.Shape)} (1 to {WindowAttributes.MaxSpatialRank} spatial axes are supported)");
            if (window.SpatialRank != 0 && window.SpatialRank != spatial)
                throw context.Unsupported($"attributes for {window.SpatialRank} spatial axes with weights of shape {Tensor.Format(w.Shape)}");
            if (window.KernelShape is { } kernel && !kernel.AsSpan().SequenceEqual(w.Shape[2..]))
                throw context.Unsupported($"kernel_shape {Tensor.Format(kernel)} differs from the weights' {Tensor.Format(w.Shape[2..])}");
            if (w.Shape[0] % group != 0) throw context.Unsupported($"{w.Shape[0]} output channels do not split into {group} groups");
            int outputsPerGroup = w.Shape[0] / (int)group, channelsPerGroup = w.Shape[1];
            if (w.ElementType == TensorElementType.Float32 && group == 1 && (!context.HasInput(2) || context.ConstantInput(2) is { ElementType: TensorElementType.Float32 }))
            {
                // Output channels as rows, pixels as columns: W packed once, with the bias as one more column.
                int k = w.Length / w.Shape[0];
                var biasValues = context.ConstantInput(2)?.ToArray<float>();
                int width = k + (biasValues is null ? 0 : 1);
                var rows = new float[w.Shape[0] * width];
                for (int m = 0; m < w.Shape[0]; m++)
                {
                    w.AsSpan<float>().Slice(m * k, k).CopyTo(rows.AsSpan(m * width, k));
                    if (biasValues is not null) rows[m * width + k] = biasValues[m];
                }
                int[] shape = w.ShapeArray;
                // 3 x 3 layers may also run by Winograd's algorithm, on maps large enough (decided per run).
                var winograd = WinogradConvolution.Fits(window, shape) ? WinogradConvolution.Create(w.AsSpan<float>(), shape[0], shape[1]) : null;
                context.TakeConstantInput(1); // held once, packed
                if (biasValues is not null) context.TakeConstantInput(2);
                return new Conv(window, 1, null, biasValues, PackedFloatRows.Pack(rows, w.Shape[0], width), shape, winograd);
            }
            if (w.ElementType == TensorElementType.Float32 && !IsDepthwise((int)group, channelsPerGroup))
            {
                int taps = Tensor.CountElements(w.Shape[2..]);
                packed = new PackedFloatMatrix[group];
                for (int g = 0; g < group; g++)
                    packed[g] = ConvolutionLowering.PackConvWeights(w.AsSpan<float>(), g, outputsPerGroup, channelsPerGroup, taps);
            }
        }
        float[]? bias = context.ConstantInput(2) is { ElementType: TensorElementType.Float32 } b ? b.ToArray<float>() : null;
        return new Conv(window, (int)group, packed, bias, null);
    }

    /// <summary>One input channel per group (and more than one group): each output channel sees one input plane.</summary>
    private static bool IsDepthwise(int group, int channelsPerGroup) => group > 1 && channelsPerGroup == 1;

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: RunFloat(call, x, takenWeightShape ?? call.Input(1).ShapeArray, call.OptionalInput(1), call.OptionalInput(2), call.OptionalInput(3)); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: Conv of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    /// <summary>
    /// float32 Conv; with <paramref name="residual"/> (input 3 of the fused node, <see cref="Planning.ConvAddFusion"/>)
    /// the output is <c>Relu?(Conv(x) + residual)</c>, added while each chunk is in cache when the shapes are equal.
    /// </summary>
    private void RunFloat(OperatorCall call, Tensor x, int[] weightShape, Tensor? weights, Tensor? b, Tensor? residual)
    {
        var w = new WeightShape(weightShape);
        string node = call.Context.Node;
        if (x.Rank < 3 || w.Rank != x.Rank)
            throw new InvalidOperationException($"{node}: Conv of input {Tensor.Format(x.Shape)} with weights {Tensor.Format(w.Shape)}: ranks differ or no spatial axes.");
        int batch = x.Shape[0], channels = x.Shape[1], outputs = w.Shape[0], channelsPerGroup = w.Shape[1];
        if (channels != channelsPerGroup * group || outputs % group != 0)
            throw new InvalidOperationException($"{node}: input {Tensor.Format(x.Shape)} and weights {Tensor.Format(w.Shape)} do not fit {group} groups.");
        if (b is not null && b.Length != outputs)
            throw new InvalidOperationException($"{node}: bias of {b.Length} values for {outputs} output channels.");
        var g = window.Resolve(x.Shape[2..], window.KernelShape ?? w.ShapeArray[2..], node);
        if (g.KernelSize * channelsPerGroup * outputs != w.Length)
            throw new InvalidOperationException($"{node}: kernel_shape {Tensor.Format(window.KernelShape)} does not match weights of shape {Tensor.Format(w.Shape)}.");
        int[] shape = g.OutputShape(batch, outputs);
        int threads = call.Context.DegreeOfParallelism;
        if (residual is not null && residual.ElementType != TensorElementType.Float32)
            throw new InvalidOperationException($"{node}: the residual added to the float32 Conv is {residual.ElementType.DisplayName()}.");
        if (residual is not null && !residual.Shape.SequenceEqual(shape))
        {
            // A residual that broadcasts: the convolution alone, then Add and Relu as the two nodes did.
            var alone = Tensor.Create(new float[Tensor.CountElements(shape)], shape);
            Compute(g, x, outputs, weights, b, (float[])alone.Buffer.Data, null, false, threads);
            var sum = call.Output(0, TensorElementType.Float32, Broadcast.Shape(shape, residual.Shape, node));
            ElementwiseBinary.Run<float, AddFunction<float>>(alone, residual, sum, threads);
            if (_relu) System.Numerics.Tensors.TensorPrimitives.Max(sum.AsSpan<float>(), 0f, sum.AsSpan<float>());
            return;
        }
        var y = call.Output(0, TensorElementType.Float32, shape);
        Compute(g, x, outputs, weights, b, (float[])y.Buffer.Data, (float[]?)residual?.Buffer.Data, _relu, threads);
    }

    /// <summary>The convolution into <paramref name="ys"/>, plus <paramref name="sum"/> (same shape) if given, then Relu if asked.</summary>
    private void Compute(WindowGeometry g, Tensor x, int outputs, Tensor? weights, Tensor? b, float[] ys, float[]? sum, bool relu, int threads)
    {
        int batch = x.Shape[0], channels = x.Shape[1];
        int channelsPerGroup = channels / group, length = batch * outputs * g.OutputSize;
        float[]? bias = constantBias ?? b?.ToArray<float>();
        var xs = (float[])x.Buffer.Data;
        if (IsDepthwise(group, channelsPerGroup))
        {
            Depthwise(g, xs, (float[])weights!.Buffer.Data, bias, ys, batch, channels, outputs, threads);
            AddAndRelu(ys.AsSpan(0, length), sum, relu);
            return;
        }
        if (winograd is not null && WinogradConvolution.Worth(g))
        {
            int inputImage = channels * g.InputSize, outputImage = outputs * g.OutputSize;
            unsafe
            {
                fixed (float* source = xs, target = ys)
                {
                    fixed (float* residual = sum)
                    {
                        for (int n = 0; n < batch; n++)
                        {
                            winograd.Run(g, source + (long)n * inputImage, target + (long)n * outputImage, constantBias,
                                residual is null ? null : residual + (long)n * outputImage, relu, threads, vectors: true);
                        }
                    }
                }
            }
            return;
        }
        if (weightRows is not null)
        {
            ByPixels(g, xs, weightRows, ys, sum, batch, channels, outputs, constantBias is not null, relu, threads);
            return;
        }
        var packed = packedWeights ?? Enumerable.Range(0, group)
            .Select(i => ConvolutionLowering.PackConvWeights(weights!.AsSpan<float>(), i, outputs / group, channelsPerGroup, g.KernelSize)).ToArray();
        Lowered(g, xs, packed, bias, ys, batch, channels, outputs, threads);
        AddAndRelu(ys.AsSpan(0, length), sum, relu);
    }

    /// <summary>The fused residual and Relu over a whole output: the same operations as the Add and Relu nodes.</summary>
    private static void AddAndRelu(Span<float> y, float[]? sum, bool relu)
    {
        if (sum is not null) System.Numerics.Tensors.TensorPrimitives.Add(y, sum.AsSpan(0, y.Length), y);
        if (relu) System.Numerics.Tensors.TensorPrimitives.Max(y, 0f, y);
    }

    /// <summary>
    /// Output channels x pixels on the packed weights (<see cref="ConvolutionPanels"/>): per image, pixel chunks of the
    /// patch matrix are written as B panels and multiplied into the NCHW output; chunks run on separate threads.
    /// </summary>
    private static unsafe void ByPixels(WindowGeometry g, float[] x, PackedFloatRows weights, float[] y, float[]? sum, int batch, int channels, int outputs, bool bias, bool relu, int threads)
    {
        int pixels = g.OutputSize, depth = weights.Depth;
        var (chunks, smallMap) = ConvolutionPanels.Chunking(pixels, depth, threads);
        bool parallel = threads > 1 && chunks > 1;
        for (int n = 0; n < batch; n++)
        {
            int image = n * channels * g.InputSize, output = n * outputs * pixels;
            void Chunk(int chunk, int gemmThreads)
            {
                var (first, count) = ConvolutionPanels.ChunkRange(pixels, chunks, chunk);
                int panels = (count + ConvolutionPanels.PanelWidth - 1) / ConvolutionPanels.PanelWidth;
                // Sixteen floats of slack so the panels can start on a cache line (see PackedFloatMatrix.Allocate).
                float[] buffer = ArrayPool<float>.Shared.Rent(panels * depth * ConvolutionPanels.PanelWidth + 16);
                try
                {
                    fixed (float* source = &x[image], start = buffer)
                    {
                        float* target = start + CacheLineStorage.LineOffset(start);
                        if (smallMap && (long)count * depth >= 1 << 16)
                        {
                            // Panel p starts at p x depth x 16 floats whoever packs it: each thread packs whole panels.
                            nint from = (nint)source, to = (nint)target;
                            IntraOpThreads.For(gemmThreads, gemmThreads, part =>
                            {
                                var (partFirst, partCount) = ConvolutionPanels.ChunkRange(count, gemmThreads, part);
                                if (partCount > 0) PackPanels(g, (float*)from, channels, first + partFirst, partCount, (float*)to + (long)partFirst * depth, bias);
                            });
                        }
                        else
                        {
                            PackPanels(g, source, channels, first, count, target, bias);
                        }
                        FloatGemm.Multiply(weights, target, depth, count, y.AsSpan(output + first), pixels, gemmThreads, shareRows: smallMap);
                    }
                    if (relu || sum is not null)
                    {
                        // While the chunk's rows are still in cache; the same x + residual and max(x, 0) as the Add and Relu operators.
                        for (int m = 0; m < outputs; m++)
                        {
                            int at = output + m * pixels + first;
                            var row = y.AsSpan(at, count);
                            if (sum is not null) System.Numerics.Tensors.TensorPrimitives.Add(row, sum.AsSpan(at, count), row);
                            if (relu) System.Numerics.Tensors.TensorPrimitives.Max(row, 0f, row);
                        }
                    }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(buffer);
                }
            }
            if (parallel) IntraOpThreads.For(chunks, threads, c => Chunk(c, 1));
            else for (int c = 0; c < chunks; c++) Chunk(c, threads);
        }
    }

    /// <summary>Patches of pixels <c>[first, first + count)</c> (first a multiple of the panel width) as B panels at <paramref name="target"/>.</summary>
    private static unsafe void PackPanels(WindowGeometry g, float* source, int channels, int first, int count, float* target, bool bias)
    {
        if (ConvolutionPanelsPadded.Supports(g)) ConvolutionPanelsPadded.Pack(g, source, channels, first, count, target, bias);
        else ConvolutionPanels.Pack(g, source, channels, first, count, target, bias);
    }

    /// <summary>The GEMM path: per image, NHWC once; per group, chunks of output pixels become patches, a GEMM, and a transposed store.</summary>
    private void Lowered(WindowGeometry g, float[] x, PackedFloatMatrix[] packed, float[]? bias, float[] y, int batch, int channels, int outputs, int threads)
    {
        int inSize = g.InputSize, outSize = g.OutputSize, channelsPerGroup = channels / group, outputsPerGroup = outputs / group;
        int depth = g.KernelSize * channelsPerGroup;
        // A 1x1 window with unit strides and no padding reads the NHWC image itself as the patch matrix.
        bool pointwise = group == 1 && g.KernelSize == 1 && g.Stride.All(s => s == 1) && g.PadBegin.All(p => p == 0) && g.PadEnd.All(p => p == 0);
        float[]? nhwc = channels > 1 ? ArrayPool<float>.Shared.Rent(inSize * channels) : null;
        var (chunks, rowsPerChunk, parallel) = ConvolutionLowering.Chunking(outSize, depth, threads);
        try
        {
            for (int n = 0; n < batch; n++)
            {
                int imageOffset = n * channels * inSize;
                float[] image = x;
                if (nhwc is not null)
                {
                    ConvolutionLowering.Transpose(x.AsSpan(imageOffset, channels * inSize), channels, inSize, nhwc, channels);
                    image = nhwc;
                    imageOffset = 0;
                }
                for (int gi = 0; gi < group; gi++)
                {
                    int groupIndex = gi, outputOffset = (n * outputs + gi * outputsPerGroup) * outSize, source = imageOffset;
                    float[] input = image;
                    void Chunk(int chunk, int gemmThreads)
                    {
                        int first = chunk * rowsPerChunk, rows = Math.Min(rowsPerChunk, outSize - first);
                        float[]? patches = pointwise ? null : ArrayPool<float>.Shared.Rent(rows * depth);
                        float[] result = ArrayPool<float>.Shared.Rent(rows * outputsPerGroup);
                        try
                        {
                            ReadOnlySpan<float> a;
                            if (patches is null)
                            {
                                a = input.AsSpan(source + first * channels, rows * channels);
                            }
                            else
                            {
                                ConvolutionLowering.BuildPatches(g, input.AsSpan(source), channels, groupIndex * channelsPerGroup, channelsPerGroup, first, rows, 0f, patches);
                                a = patches.AsSpan(0, rows * depth);
                            }
                            ReadOnlySpan<float> groupBias = bias is null ? default : bias.AsSpan(groupIndex * outputsPerGroup, outputsPerGroup);
                            FloatGemm.Multiply(a, rows, packed[groupIndex], result, groupBias, gemmThreads);
                            ConvolutionLowering.Transpose(result.AsSpan(0, rows * outputsPerGroup), rows, outputsPerGroup, y.AsSpan(outputOffset + first), outSize);
                        }
                        finally
                        {
                            if (patches is not null) ArrayPool<float>.Shared.Return(patches);
                            ArrayPool<float>.Shared.Return(result);
                        }
                    }
                    if (parallel)
                        IntraOpThreads.For(chunks, threads, c => Chunk(c, 1));
                    else
                        for (int c = 0; c < chunks; c++) Chunk(c, threads);
                }
            }
        }
        finally
        {
            if (nhwc is not null) ArrayPool<float>.Shared.Return(nhwc);
        }
    }

    /// <summary>Depthwise: output channel m reads input channel m / (outputs per group) only; a direct loop beats a GEMM with N = 1.</summary>
    private void Depthwise(WindowGeometry g, float[] x, float[] w, float[]? bias, float[] y, int batch, int channels, int outputs, int threads)
    {
        int multiplier = outputs / group;
        Pool.ForEachPlane(batch * outputs, g.OutputSize * g.KernelSize, threads, plane =>
        {
            int n = plane / outputs, m = plane % outputs;
            DepthwisePlane(g, x.AsSpan((n * channels + m / multiplier) * g.InputSize, g.InputSize), w.AsSpan(m * g.KernelSize, g.KernelSize),
                bias?[m] ?? 0f, y.AsSpan(plane * g.OutputSize, g.OutputSize));
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DepthwisePlane(WindowGeometry g, ReadOnlySpan<float> source, ReadOnlySpan<float> kernel, float initial, Span<float> target)
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        int sd = g.Stride[0], sh = g.Stride[1], sw = g.Stride[2], pd = g.PadBegin[0], ph = g.PadBegin[1], pw = g.PadBegin[2];
        int dd = g.Dilation[0], dh = g.Dilation[1], dw = g.Dilation[2], kH = g.Kernel[1], kW = g.Kernel[2];
        int[] firstD = g.FirstTap[0], endD = g.EndTap[0], firstH = g.FirstTap[1], endH = g.EndTap[1], firstW = g.FirstTap[2], endW = g.EndTap[2];
        int o = 0;
        for (int od = 0; od < outD; od++)
        {
            int fd = firstD[od], ed = endD[od], d0 = od * sd - pd;
            for (int oh = 0; oh < outH; oh++)
            {
                int fh = firstH[oh], eh = endH[oh], h0 = oh * sh - ph;
                for (int ow = 0; ow < outW; ow++, o++)
                {
                    int fw = firstW[ow], ew = endW[ow], w0 = ow * sw - pw;
                    float sum = initial;
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * dd;
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int row = (id * inH + h0 + kh * dh) * inW + w0;
                            int tap = (kd * kH + kh) * kW;
                            for (int kw = fw; kw < ew; kw++) sum += kernel[tap + kw] * source[row + kw * dw];
                        }
                    }
                    target[o] = sum;
                }
            }
        }
    }

    /// <summary>The weights' shape, whether the weights are at hand or were packed and dropped at load.</summary>
    private readonly record struct WeightShape(int[] ShapeArray)
    {
        public ReadOnlySpan<int> Shape => ShapeArray;
        public int Rank => ShapeArray.Length;
        public int Length => Tensor.CountElements(ShapeArray);
    }
}
