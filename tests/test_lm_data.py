import pytest
import torch

from rnnlab.errors import RnnlabError
from rnnlab.lm.data import (
    IGNORE,
    SentenceBatches,
    StreamBatches,
    batchify,
    draw_length,
    pad_sentences,
    read_text,
    sentence_batches,
    split_lines,
    stream_block,
    stream_blocks,
    variable_blocks,
)
from rnnlab.text.pipeline import TextPipeline

PTB_LIKE = ["the <unk> sat", "", "a cat sat on the mat"]


def test_read_text_decodes_with_the_encoding_and_error_handler(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\nlà\n".encode("latin-1"))
    assert read_text(path, "latin-1") == ["café", "là"]
    assert read_text(path, errors="replace") == ["caf\ufffd", "l\ufffd"]
    assert read_text(path, errors="ignore") == ["caf", "l"]
    with pytest.raises(RnnlabError, match="byte offset 3"):
        read_text(path)


def test_stream_word_lines_end_with_eos_and_keep_unk():
    pipeline = TextPipeline("word", "stream")
    tokens = list(pipeline.token_lines(PTB_LIKE))
    assert tokens == [["the", "<unk>", "sat", "</s>"], ["a", "cat", "sat", "on", "the", "mat", "</s>"]]
    vocab = pipeline.build_vocab(PTB_LIKE)
    # PTB's rule: the file's own <unk> is the unk token; </s> plays <eos>; no <s> in streams
    assert vocab.itos[:2] == ["<unk>", "</s>"] and "<s>" not in vocab
    assert len(vocab) == 2 + len({"the", "sat", "a", "cat", "on", "mat"})
    ids = pipeline.encode(["the dog sat"], vocab)
    assert vocab.decode(ids) == ["the", "<unk>", "sat", "</s>"]


def test_sentence_mode_wraps_lines_in_bos_eos():
    pipeline = TextPipeline("word", "sentence")
    tokens = list(pipeline.token_lines(PTB_LIKE))
    assert tokens[0] == ["<s>", "the", "<unk>", "sat", "</s>"] and len(tokens) == 2
    vocab = pipeline.build_vocab(PTB_LIKE)
    assert vocab.itos[:3] == ["<unk>", "<s>", "</s>"]
    ids = pipeline.encode(PTB_LIKE, vocab)
    assert [len(s) for s in ids] == [5, 8]


def test_characters_are_code_points_and_newline_is_a_token():
    lines = ["héllo 🙂", "", "ab"]
    pipeline = TextPipeline("char", "stream")
    tokens = list(pipeline.token_lines(lines))
    assert tokens == [["h", "é", "l", "l", "o", " ", "🙂", "\n"], ["\n"], ["a", "b", "\n"]]
    vocab = pipeline.build_vocab(lines)
    assert "\n" in vocab and "🙂" in vocab and vocab.itos[0] == "<unk>"
    assert list(TextPipeline("char", "sentence").token_lines(["ab"])) == [["<s>", "a", "b", "</s>"]]


def test_batchify_and_blocks_cover_the_stream_once():
    ids = list(range(43))
    data = batchify(ids, 4)  # 43 // 4 = 10 rows; the last 3 ids drop
    assert data.shape == (10, 4)
    assert data[:, 1].tolist() == list(range(10, 20))  # each column is a contiguous piece
    starts = stream_blocks(data.shape[0], 4)
    assert list(starts) == [0, 4, 8]
    targets = []
    for s in starts:
        x, y = stream_block(data, s, 4)
        assert torch.equal(y[:-1], x[1:])
        targets.append(y)
    assert torch.equal(torch.cat(targets), data[1:])  # every id but the first is predicted once
    assert stream_block(data, 8, 4)[0].shape == (1, 4)  # the short last block
    with pytest.raises(RnnlabError, match="too few"):
        batchify([1, 2, 3], 2)


def test_pad_sentences_lengths_and_targets():
    x, y, lengths = pad_sentences([[1, 5, 2], [1, 6, 7, 8, 2]])
    assert lengths.tolist() == [2, 4]
    assert x[:, 0].tolist() == [1, 5, 0, 0] and y[:, 0].tolist() == [5, 2, IGNORE, IGNORE]
    assert x[:, 1].tolist() == [1, 6, 7, 8] and y[:, 1].tolist() == [6, 7, 8, 2]


def test_sentence_batches_reshuffle_per_epoch_deterministically():
    sentences = [[1, i, 2] for i in range(10)]
    a, b = SentenceBatches(sentences, 3, seed=5), SentenceBatches(sentences, 3, seed=5)
    assert list(a.epoch(1)) == list(b.epoch(1)) and list(a.epoch(2)) == list(b.epoch(2))
    assert list(a.epoch(1)) != list(a.epoch(2))
    assert sorted(i for batch in a.epoch(1) for i in batch) == list(range(10))
    assert list(SentenceBatches(sentences, 3).epoch(1)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_sentence_order_is_one_small_tensor_cut_into_batches_on_demand():
    order = sentence_batches(10, 4, seed=7)
    assert order.order.dtype == torch.int32 and order.order.shape == (10,)  # 4 bytes a sentence
    # the permutation of the int64 draw that epochs were shuffled by before
    assert order.order.tolist() == torch.randperm(10, generator=torch.Generator().manual_seed(7)).tolist()
    assert len(order) == 3 and order[2] == order.order[8:].tolist() and order[-1] == order[2]
    assert list(order) == [order[0], order[1], order[2]]  # iteration stops after the last
    with pytest.raises(IndexError):
        order[3]


def test_stream_batches_iterate_every_epoch_the_same():
    batches = StreamBatches(list(range(100)), 5, 6)
    assert list(batches.epoch(1)) == list(batches.epoch(2)) == [0, 6, 12, 18]
    x, y, lengths = batches.get(18)
    assert x.shape == (1, 5) and lengths is None


def test_split_fractions_are_contiguous_and_deterministic():
    lines = [f"line {i}" for i in range(100)]
    train, valid, test = split_lines(lines, 0.1, 0.05)
    assert (len(train), len(valid), len(test)) == (85, 10, 5)
    assert train + valid + test == lines
    assert split_lines(lines, 0.1, 0.05) == (train, valid, test)
    assert split_lines(lines, 0.1, 0)[2] == []
    with pytest.raises(RnnlabError):
        split_lines(lines, 0.6, 0.4)
    with pytest.raises(RnnlabError, match="too few"):
        split_lines(lines[:3], 0.1, 0.1)


def test_segmented_lines_keep_their_tokens_exactly_in_both_modes():
    lines = ["我 爱 北京 OK", "", "天安门 上"]
    assert list(TextPipeline("segmented", "stream", lower=True).token_lines(lines)) == [
        ["我", "爱", "北京", "OK", "</s>"], ["天安门", "上", "</s>"]]
    assert list(TextPipeline("segmented", "sentence").token_lines(lines))[1] == [
        "<s>", "天安门", "上", "</s>"]


def test_unknown_level_is_one_clear_error():
    with pytest.raises(RnnlabError, match="level must be one of word, char, segmented, jieba"):
        TextPipeline("bpe", "stream")


def test_a_line_longer_than_a_reading_piece_stays_one_line(tmp_path):
    from rnnlab.text.corpus import MAX_PIECE_CHARS

    words = [f"w{i % 50}" for i in range(MAX_PIECE_CHARS // 2)]  # ~3 pieces of the reader
    path = tmp_path / "long.txt"
    path.write_text(" ".join(words) + "\nshort line\n", encoding="utf-8")
    lines = read_text(path)
    assert len(lines) == 2 and lines[0].split() == words
    pieces = list(TextPipeline("word", "stream").token_lines(lines))
    assert len(pieces) > 2  # the long line is tokenized piece by piece ...
    tokens = [t for piece in pieces for t in piece]
    assert tokens == [*words, "</s>", "short", "line", "</s>"]  # ... with one end marker
    chars = [t for line in TextPipeline("char", "stream").token_lines(lines) for t in line]
    assert chars.count("\n") == 2


def test_variable_bptt_lengths_are_seeded_and_follow_awd_lstm():
    generator = torch.Generator().manual_seed(0)
    assert [draw_length(70, generator) for _ in range(12)] == [71, 71, 70, 71, 68, 72, 69, 74,
                                                               66, 71, 67, 70]
    generator = torch.Generator().manual_seed(1)
    lengths = torch.tensor([draw_length(70, generator) for _ in range(20000)], dtype=torch.float)
    half = lengths < 52  # around bptt/2 = 35, 3.4 standard deviations from either centre
    assert abs(half.float().mean().item() - 0.05) < 0.005
    # floor(N(70, 5²)): mean 69.5, standard deviation 5; floor(N(35, 5²)): mean 34.5
    assert abs(lengths[~half].mean().item() - 69.5) < 0.15
    assert abs(lengths[~half].std().item() - 5.0) < 0.15
    assert abs(lengths[half].mean().item() - 34.5) < 0.5
    assert lengths.max().item() == 90  # the cap at bptt + 20 is reached, never passed
    short = [draw_length(3, torch.Generator().manual_seed(s)) for s in range(300)]
    assert min(short) == 3 and max(short) <= 23  # at least 5, or bptt when that is shorter


def test_variable_blocks_cover_the_stream_once_in_order():
    blocks = variable_blocks(60, 10, torch.Generator().manual_seed(0))
    assert blocks == [(0, 11), (11, 11), (22, 10), (32, 11), (43, 8), (51, 8)]  # the last cut
    starts = [s for s, _ in blocks]
    assert starts == [0, *(s + n for s, n in blocks[:-1])] and sum(n for _, n in blocks) == 59


def test_stream_batches_with_a_seed_draw_each_epoch_anew_and_again():
    batches = StreamBatches(list(range(400)), batch=4, bptt=10, seed=3)
    one, two = batches.epoch(1), batches.epoch(2)
    assert one == batches.epoch(1) and one != two  # the same epoch, the same blocks (resume)
    assert one == variable_blocks(100, 10, torch.Generator().manual_seed(3 * 1_000_003 + 1))
    start, length = one[1]
    x, y, lengths = batches.get(one[1])
    assert x.shape == (length, 4) and lengths is None
    assert x[:, 0].tolist() == list(range(start, start + length))
    assert torch.equal(y[:-1], x[1:])
    assert StreamBatches(list(range(400)), batch=4, bptt=10).epoch(5) == range(0, 99, 10)
    x, y, _ = batches.get(one[1], slice(1, 3))  # two of the four columns
    assert x.shape == (length, 2) and x[0].tolist() == [100 + start, 200 + start]
