namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Split: the input cut along one axis into the outputs, by the given sizes (attribute before opset 13,
/// input after), into equal parts, or (opset 18, num_outputs) into chunks of ceil(size / n) with a smaller last one.
/// </summary>
[OnnxOperator("Split", 1)]
internal sealed class Split(long axis, long[]? fixedSizes, bool sizesFromInput, bool unevenLast) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        long axis = context.Int("axis", 0);
        int outputs = context.Node.Output.Count;
        if (context.Opset < 13)
        {
            // Opset 1 also took the sizes as an optional second input.
            var sizes = context.Ints("split");
            if (sizes is null && context.Opset < 2 && context.HasInput(1))
                return new Split(axis, context.ConstantInput(1) is { } c ? Elements.Integers(c, context.Label, "split") : null, sizesFromInput: true, unevenLast: false);
            if (sizes is not null && sizes.Length != outputs)
                throw context.Unsupported($"{sizes.Length} split sizes for {outputs} outputs");
            return new Split(axis, sizes, sizesFromInput: false, unevenLast: false);
        }
        if (context.HasInput(1))
            return new Split(axis, context.ConstantInput(1) is { } c ? Elements.Integers(c, context.Label, "split") : null, sizesFromInput: true, unevenLast: false);
        bool uneven = false;
        if (context.Opset >= 18 && context.Attribute("num_outputs") is { } n)
        {
            if (n.I != outputs) throw context.Unsupported($"num_outputs {n.I} with {outputs} outputs");
            uneven = true;
        }
        return new Split(axis, null, sizesFromInput: false, uneven);
    }

    public override void Run(OperatorCall call)
    {
        var input = call.Input(0);
        string node = call.Context.Node;
        int a = Elements.Axis(axis, input.Rank, node);
        int dim = input.Shape[a];
        int count = call.OutputCount;
        var sizes = new int[count];
        var given = fixedSizes ?? (sizesFromInput && call.OptionalInput(1) is { } s ? Elements.Integers(s, node, "split") : null);
        if (given is { Length: > 0 })
        {
            if (given.Length != count) throw new InvalidOperationException($"{node}: {given.Length} split sizes for {count} outputs.");
            long total = 0;
            for (int i = 0; i < count; i++)
            {
                if (given[i] < 0) throw new InvalidOperationException($"{node}: split size {given[i]} is negative.");
                total += given[i];
                sizes[i] = (int)Math.Min(given[i], int.MaxValue);
            }
            if (total != dim) throw new InvalidOperationException($"{node}: split sizes add up to {total}, not the axis size {dim}.");
        }
        else if (unevenLast)
        {
            int chunk = (dim + count - 1) / count;
            for (int i = 0; i < count; i++) sizes[i] = Math.Clamp(dim - i * chunk, 0, chunk);
        }
        else
        {
            if (dim % count != 0) throw new InvalidOperationException($"{node}: axis size {dim} does not split into {count} equal parts.");
            sizes.AsSpan().Fill(dim / count);
        }

        var shape = input.ShapeArray;
        if (count == 1)
        {
            call.OutputView(0, input, shape);
            return;
        }
        var outputs = new Tensor[count];
        for (int i = 0; i < count; i++)
        {
            var part = shape.ToArray();
            part[a] = sizes[i];
            outputs[i] = call.Output(i, input.ElementType, part);
        }
        var move = new Move(input, outputs, Elements.Product(shape, 0, a));
        Elements.Dispatch(input, ref move);
    }

    private readonly struct Move(Tensor input, Tensor[] outputs, int outer) : IElementMove
    {
        public void Run<T>()
        {
            var src = Elements.Span<T>(input);
            int row = src.Length / Math.Max(outer, 1);
            int offset = 0;
            foreach (var output in outputs)
            {
                var dst = Elements.Span<T>(output);
                int block = dst.Length / Math.Max(outer, 1);
                for (int o = 0; o < outer && block > 0; o++)
                    src.Slice(o * row + offset, block).CopyTo(dst.Slice(o * block, block));
                offset += block;
            }
        }
    }
}
