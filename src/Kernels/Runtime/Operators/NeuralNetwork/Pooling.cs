using System.Numerics;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>MaxPool: the largest element of each window (NaN ignored), and optionally its flat index (Indices, opset 8+).</summary>
[OnnxOperator("MaxPool", 1)]
internal sealed class MaxPool(WindowAttributes window, bool columnMajorIndices) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        if (window.KernelShape is null) throw context.Unsupported("MaxPool needs kernel_shape");
        long storageOrder = context.Int("storage_order", 0);
        if (storageOrder is not (0 or 1)) throw context.Unsupported($"storage_order {storageOrder}");
        return new MaxPool(window, storageOrder == 1);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: Run<float>(call, x); break;
            case TensorElementType.Float64: Run<double>(call, x); break;
            case TensorElementType.Int8: Run<sbyte>(call, x); break;
            case TensorElementType.UInt8: Run<byte>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: MaxPool of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    private void Run<T>(OperatorCall call, Tensor x) where T : unmanaged, INumber<T>
    {
        var g = Pool.Geometry(window, x, window.KernelShape!, call.Context.Node);
        int planes = x.Shape[0] * x.Shape[1];
        var shape = g.OutputShape(x.Shape[0], x.Shape[1]);
        var y = call.Output(0, x.ElementType, shape);
        Tensor? indices = call.OutputCount > 1 ? call.Output(1, TensorElementType.Int64, shape) : null;
        var xs = x.Buffer.Data as T[] ?? throw new InvalidOperationException();
        var ys = (T[])y.Buffer.Data;
        var ids = indices?.Buffer.Data as long[];
        bool columnMajor = columnMajorIndices;
        Pool.ForEachPlane(planes, g.OutputSize * g.KernelSize, call.Context.DegreeOfParallelism, plane =>
            MaxPlane(g, xs, plane, ys, ids, columnMajor));
    }

    private static void MaxPlane<T>(WindowGeometry g, T[] x, int plane, T[] y, long[]? indices, bool columnMajor) where T : unmanaged, INumber<T>
    {
        int inH = g.Input[1], inW = g.Input[2];
        int inputOffset = plane * g.InputSize;
        int o = plane * g.OutputSize;
        var source = x.AsSpan(inputOffset, g.InputSize);
        for (int od = 0; od < g.Output[0]; od++)
        {
            var (fd, ed) = g.Taps(0, od);
            int d0 = od * g.Stride[0] - g.PadBegin[0];
            for (int oh = 0; oh < g.Output[1]; oh++)
            {
                var (fh, eh) = g.Taps(1, oh);
                int h0 = oh * g.Stride[1] - g.PadBegin[1];
                for (int ow = 0; ow < g.Output[2]; ow++, o++)
                {
                    var (fw, ew) = g.Taps(2, ow);
                    int w0 = ow * g.Stride[2] - g.PadBegin[2];
                    T best = default;
                    int bestIndex = -1;
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * g.Dilation[0];
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int ih = h0 + kh * g.Dilation[1];
                            int row = (id * inH + ih) * inW;
                            for (int kw = fw; kw < ew; kw++)
                            {
                                int index = row + w0 + kw * g.Dilation[2];
                                T v = source[index];
                                // The first non-NaN element starts the maximum; later ones replace it only when larger.
                                if (bestIndex < 0 ? !T.IsNaN(v) : v > best)
                                {
                                    best = v;
                                    bestIndex = index;
                                }
                            }
                        }
                    }
                    if (bestIndex < 0)
                    {
                        // Every element was NaN: the maximum is NaN, at the window's first element.
                        best = T.CreateTruncating(double.NaN);
                        bestIndex = ((d0 + fd * g.Dilation[0]) * inH + h0 + fh * g.Dilation[1]) * inW + w0 + fw * g.Dilation[2];
                    }
                    y[o] = best;
                    if (indices is not null)
                    {
                        long spatial = bestIndex;
                        if (columnMajor)
                        {
                            int iw = bestIndex % inW, ih = bestIndex / inW % inH, id = bestIndex / (inW * inH);
                            spatial = ih + (long)iw * inH + (long)id * inH * inW;
                        }
                        indices[o] = (long)plane * g.InputSize + spatial;
                    }
                }
            }
        }
    }
}

/// <summary>AveragePool: the mean of each window, over the input elements only or (count_include_pad) over the explicit padding too.</summary>
[OnnxOperator("AveragePool", 1)]
internal sealed class AveragePool(WindowAttributes window, bool countIncludePad) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        if (window.KernelShape is null) throw context.Unsupported("AveragePool needs kernel_shape");
        return new AveragePool(window, context.Int("count_include_pad", 0) != 0);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: Run<float>(call, x); break;
            case TensorElementType.Float64: Run<double>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: AveragePool of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    private void Run<T>(OperatorCall call, Tensor x) where T : unmanaged, IFloatingPoint<T>
    {
        var g = Pool.Geometry(window, x, window.KernelShape!, call.Context.Node);
        int planes = x.Shape[0] * x.Shape[1];
        var y = call.Output(0, x.ElementType, g.OutputShape(x.Shape[0], x.Shape[1]));
        var xs = (T[])x.Buffer.Data;
        var ys = (T[])y.Buffer.Data;
        bool includePad = countIncludePad;
        Pool.ForEachPlane(planes, g.OutputSize * g.KernelSize, call.Context.DegreeOfParallelism, plane =>
            AveragePlane(g, xs, plane, ys, includePad));
    }

    private static void AveragePlane<T>(WindowGeometry g, T[] x, int plane, T[] y, bool includePad) where T : unmanaged, IFloatingPoint<T>
    {
        int inH = g.Input[1], inW = g.Input[2];
        var source = x.AsSpan(plane * g.InputSize, g.InputSize);
        int o = plane * g.OutputSize;
        for (int od = 0; od < g.Output[0]; od++)
        {
            var (fd, ed) = g.Taps(0, od);
            int d0 = od * g.Stride[0] - g.PadBegin[0];
            int padD = includePad ? Pool.PaddedTaps(g, 0, od) : ed - fd;
            for (int oh = 0; oh < g.Output[1]; oh++)
            {
                var (fh, eh) = g.Taps(1, oh);
                int h0 = oh * g.Stride[1] - g.PadBegin[1];
                int padH = includePad ? Pool.PaddedTaps(g, 1, oh) : eh - fh;
                for (int ow = 0; ow < g.Output[2]; ow++, o++)
                {
                    var (fw, ew) = g.Taps(2, ow);
                    int w0 = ow * g.Stride[2] - g.PadBegin[2];
                    int padW = includePad ? Pool.PaddedTaps(g, 2, ow) : ew - fw;
                    T sum = T.Zero;
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * g.Dilation[0];
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int row = (id * inH + h0 + kh * g.Dilation[1]) * inW + w0;
                            for (int kw = fw; kw < ew; kw++) sum += source[row + kw * g.Dilation[2]];
                        }
                    }
                    int count = padD * padH * padW;
                    y[o] = count > 0 ? sum / T.CreateTruncating(count) : T.CreateTruncating(double.NaN);
                }
            }
        }
    }
}

/// <summary>What MaxPool and AveragePool share: shape checks, padded-tap counts, the loop over planes.</summary>
internal static class Pool
{
    public static WindowGeometry Geometry(WindowAttributes window, Tensor x, int[] kernel, string node)
    {
        if (x.Rank < 3) throw new InvalidOperationException($"{node}: input of shape {Tensor.Format(x.Shape)} has no spatial axes.");
        return window.Resolve(x.Shape[2..], kernel, node);
    }

    /// <summary>Taps along <paramref name="axis"/> inside the input or its explicit padding (not the ceil-mode overhang).</summary>
    public static int PaddedTaps(WindowGeometry g, int axis, int o)
    {
        int start = o * g.Stride[axis] - g.PadBegin[axis], d = g.Dilation[axis];
        int low = -g.PadBegin[axis], high = g.Input[axis] + g.PadEnd[axis];
        int count = 0;
        for (int t = 0; t < g.Kernel[axis]; t++)
        {
            int p = start + t * d;
            if (p >= low && p < high) count++;
        }
        return count;
    }

    /// <summary>Runs <paramref name="body"/> for every (image, channel) plane, in parallel when the work is large enough to pay.</summary>
    public static void ForEachPlane(int planes, int workPerPlane, int threads, Action<int> body)
    {
        if (threads > 1 && planes > 1 && (long)planes * workPerPlane >= 1 << 16)
            Parallel.For(0, planes, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
        else
            for (int p = 0; p < planes; p++) body(p);
    }
}
