#pragma once
// A circular doubly linked list with a sentinel, intrusive: the node lives inside the object, so
// linking and unlinking never allocate and an object can unlink itself in O(1) from whichever list
// holds it (the timer wheel and the flush list rely on that).

namespace chatstream {

struct ListNode {
  ListNode* prev = nullptr;
  ListNode* next = nullptr;

  bool linked() const { return next != nullptr; }
  void unlink() {
    if (!next) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

// A node that knows the object it is embedded in (for objects that cannot use offsetof).
template <typename Owner>
struct OwnedNode : ListNode {
  explicit OwnedNode(Owner* o) : owner(o) {}
  Owner* owner;
};

class IntrusiveList {
 public:
  IntrusiveList() { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return head_.next == &head_; }
  ListNode* front() { return empty() ? nullptr : head_.next; }

  void push_back(ListNode& node) {
    node.unlink();
    node.prev = head_.prev;
    node.next = &head_;
    head_.prev->next = &node;
    head_.prev = &node;
  }

  ListNode* pop_front() {
    ListNode* node = front();
    if (node) node->unlink();
    return node;
  }

  // Moves every node of `other` to the end of this list in O(1).
  void splice_back(IntrusiveList& other) {
    if (other.empty()) return;
    ListNode* first = other.head_.next;
    ListNode* last = other.head_.prev;
    first->prev = head_.prev;
    head_.prev->next = first;
    last->next = &head_;
    head_.prev = last;
    other.head_.prev = other.head_.next = &other.head_;
  }

 private:
  ListNode head_;
};

}  // namespace chatstream
